"""Findings, evidence and verdicts.

A check returns an `Outcome`: the findings it made (it is a list of them, so `outcome == []` still
reads as "clean") and what it examined, counted per (rule, clause). A rule's verdict is earned from
that evidence (CONTRACT.md, "Evidence"):

- FAIL / WARN: a finding of the target's (WARN for a C part outside `--strict`);
- ERROR: the harness could not judge (its own exception, a request the run's budget refused to send);
- PASS: at least one clause examined clean and none failed;
- SKIP: nothing examined it, with the reason (a limit the user chose, a setting not given, ...).
- FLAKY: a failure of the target's that did not recur when its test was re-run (`--confirm N`,
  chatconform.confirm); it fails the run only under --strict, or as `--flaky=fail|warn` says.

Findings of level I are notes: they are reported beside the verdict and never change it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from chatconform.rules import RULES, SOLE, Level, clause_of

Verdict = Literal["PASS", "FAIL", "WARN", "SKIP", "ERROR", "XFAIL", "XPASS", "FLAKY"]
Kind = Literal["target", "harness", "budget"]
# worst first: the order a rule's verdict is taken in, and the order reports list rules in
# XFAIL / XPASS: a failure a known-failure expectation covers / an expected failure that passes now
# (chatconform.expectations); only expectations give them, never a finding
# FLAKY: a failure that did not recur when its test was re-run (`--confirm N`): worse than a
# warning (it gates under --strict or --flaky=fail), better than a failure that recurred
ORDER: dict[str, int] = {
    "FAIL": 0, "ERROR": 1, "XPASS": 2, "FLAKY": 3, "WARN": 4, "XFAIL": 5, "SKIP": 6, "PASS": 7,
}  # fmt: skip
VERDICTS: tuple[Verdict, ...] = (
    "PASS", "FAIL", "WARN", "SKIP", "ERROR", "XFAIL", "XPASS", "FLAKY",
)  # fmt: skip
FlakyPolicy = Literal["fail", "warn"]
ClauseKey = tuple[str, str]  # (rule id, clause id)


@dataclass(slots=True)
class Finding:
    """One observed departure from a rule: what was expected, what came back, how to reproduce it.

    `kind` says whose it is: the target's (graded FAIL/WARN), or the harness's own failure to judge
    ("harness": an exception of ours; "budget": a request the run's deadline or breaker did not send),
    which makes the rule ERROR, never FAIL. `clause` names the clause of a rule with several.
    `flaky`, set by a re-run (`--confirm N`), says that the failure did not recur and how it went
    ("attempt 2 of 2 passed"): a finding that would FAIL is then FLAKY.
    """

    rule: str
    expected: str
    got: str
    level: Level | None = None  # None: the rule's own level; "C" when only a decision part broke
    reproduce: str | None = None
    evidence: dict[str, Any] | None = None
    test: str | None = None
    exchange: Any = field(
        default=None, repr=False, compare=False
    )  # record.Exchange, not serialized
    kind: Kind = "target"
    clause: str | None = None
    flaky: str | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            clause_of(self.rule, None)  # raises UnknownRule naming the id
        if self.clause is not None:
            clause_of(self.rule, self.clause)

    def effective_level(self) -> Level:
        return self.level or RULES[self.rule].level

    def grade(self, strict: bool) -> Verdict:
        if self.kind != "target":
            return "ERROR"
        if not strict and self.effective_level() != "D":
            return "WARN"
        return "FLAKY" if self.flaky else "FAIL"

    @property
    def is_note(self) -> bool:
        return self.kind == "target" and self.effective_level() == "I"

    @property
    def clause_id(self) -> str | None:
        """The clause charged: the named one, or a sole clause; None for an unnamed part of several."""
        if self.clause is not None:
            return self.clause
        r = RULES[self.rule]
        return r.clauses[0][0] if len(r.clauses) == 1 else None

    @property
    def message(self) -> str:
        text = f"expected {self.expected}; got {self.got}"
        return f"{text} (did not recur: {self.flaky})" if self.flaky else text

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "clause": self.clause_id,
            "level": self.effective_level(),
            "kind": self.kind,
            "message": self.message,
            "expected": self.expected,
            "got": self.got,
            "reproduce": self.reproduce,
            "evidence": self.evidence,
            "test": self.test,
            **({"flaky": self.flaky} if self.flaky else {}),
        }

    def render(self, strict: bool) -> str:
        r = RULES[self.rule]
        where = f"{self.rule}/{self.clause}" if self.clause else self.rule
        lines = [
            f"{where} ({self.effective_level()}, {self.grade(strict)}) {r.title}",
            f"  expected: {self.expected}",
            f"  got:      {self.got}",
        ]
        if self.flaky:
            lines.append(f"  did not recur: {self.flaky}")
        if self.reproduce:
            lines.append(f"  reproduce: {self.reproduce}")
        return "\n".join(lines)


class Outcome(list[Finding]):
    """What a check found AND what it examined: the findings (this list) plus a count of the
    observations examined per (rule, clause), and the clauses it saw it could not exercise, with why.

    Outcomes add up with `+`, `+=` and `extend` keeping the evidence of both sides. A plain list of
    findings carries no evidence: a rule judged only from such lists is never PASS.
    """

    __slots__ = ("examined", "unexercised")

    def __init__(self, findings: Iterable[Finding] = ()) -> None:
        super().__init__(findings)
        self.examined: Counter[ClauseKey] = Counter()
        self.unexercised: dict[ClauseKey, str] = {}

    def saw(self, rule: str, clause: str | None = None, n: int = 1) -> Outcome:
        """Record that `n` observations of this rule's clause were examined."""
        if n > 0:
            self.examined[(rule, clause_of(rule, clause))] += n
        return self

    def not_exercised(self, rule: str, clause: str | None, reason: str) -> Outcome:
        """Record why a clause could not be exercised (shown when no other check exercised it)."""
        self.unexercised.setdefault((rule, clause_of(rule, clause)), reason)
        return self

    def add(self, *findings: Finding) -> Outcome:
        super().extend(findings)
        return self

    def extend(self, other: Iterable[Finding]) -> None:
        super().extend(other)
        if isinstance(other, Outcome):
            self.examined.update(other.examined)
            for k, why in other.unexercised.items():
                self.unexercised.setdefault(k, why)

    def __iadd__(self, other: Iterable[Finding]) -> Outcome:  # type: ignore[override]
        self.extend(other)
        return self

    def __add__(self, other: Iterable[Finding]) -> Outcome:  # type: ignore[override]
        out = Outcome()
        out.extend(self)
        out.extend(other)
        return out

    def __radd__(self, other: Iterable[Finding]) -> Outcome:
        out = Outcome()
        out.extend(other)
        out.extend(self)
        return out

    def rules_examined(self) -> set[str]:
        return {r for r, _ in self.examined}


def clean(rule: str, clause: str | None = None, n: int = 1) -> Outcome:
    """An outcome with no finding that examined `n` observations of the rule('s clause)."""
    return Outcome().saw(rule, clause, n)


def judged(findings: Iterable[Finding], rule: str, clause: str | None = None) -> Outcome:
    """The findings of a check of one rule (clause), counted as one examined observation."""
    out = Outcome(findings)
    return out.saw(rule, clause)


@dataclass(slots=True)
class ClauseVerdict:
    id: str
    verdict: Verdict
    evidence: int  # observations examined
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "verdict": self.verdict,
            "evidence": self.evidence,
            "reason": self.reason,
        }


@dataclass(slots=True)
class RuleVerdict:
    id: str
    level: Level
    family: str
    title: str
    verdict: Verdict
    reason: str = ""
    tests: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    clauses: list[ClauseVerdict] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)
    expectations: list[dict[str, Any]] = field(default_factory=list)  # entries applied to it

    @property
    def partial(self) -> str:
        """'2/3 clauses: error frame not provoked' for a PASS that did not see every clause."""
        if len(self.clauses) < 2:
            return ""
        done = [c for c in self.clauses if c.verdict == "PASS"]
        if len(done) == len(self.clauses):
            return ""
        missing = [c for c in self.clauses if c.verdict == "SKIP"]
        why = "; ".join(f"{c.id} {c.reason}" if c.reason else c.id for c in missing)
        return f"{len(done)}/{len(self.clauses)} clauses: {why}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "level": self.level,
            "family": self.family,
            "title": self.title,
            "verdict": self.verdict,
            "reason": self.reason,
            "tests": self.tests,
            "clauses": [c.to_json() for c in self.clauses],
            "findings": [f.to_json() for f in self.findings],
            "notes": [f.to_json() for f in self.notes],
            **({"expectations": self.expectations} if self.expectations else {}),
        }


def grade_rules(
    findings: list[Finding],
    evidence: Mapping[ClauseKey, int],
    skipped: Mapping[str, str],
    strict: bool,
    selected_families: list[str] | None = None,
    tests: Mapping[str, list[str]] | None = None,
    unexercised: Mapping[ClauseKey, str] | None = None,
) -> list[RuleVerdict]:
    """One verdict per registered rule, from its findings and the evidence examined per clause.

    `skipped` gives a rule-wide reason (a test skipped, a test stopped before reaching it),
    `unexercised` a clause's own; `tests` the tests that examined each rule.
    """
    tests = tests or {}
    unexercised = unexercised or {}
    by_rule: dict[str, list[Finding]] = {}
    notes: dict[str, list[Finding]] = {}
    for f in findings:
        (notes if f.is_note else by_rule).setdefault(f.rule, []).append(f)
    out: list[RuleVerdict] = []
    for r in RULES.values():
        fs = by_rule.get(r.id, [])
        rule_skip = skipped.get(r.id)
        if (
            rule_skip is None
            and selected_families is not None
            and r.family not in selected_families
        ):
            rule_skip = f"suite {r.family!r} not selected"
        clauses: list[ClauseVerdict] = []
        for cid, _ in r.clauses:
            n = evidence.get((r.id, cid), 0)
            mine = [f for f in fs if f.clause_id == cid]
            if mine:
                v = min((f.grade(strict) for f in mine), key=ORDER.__getitem__)
                clauses.append(ClauseVerdict(cid, v, n, mine[0].message[:300]))
            elif n:
                clauses.append(ClauseVerdict(cid, "PASS", n))
            else:
                why = unexercised.get((r.id, cid)) or rule_skip or "not exercised by any check"
                clauses.append(ClauseVerdict(cid, "SKIP", 0, why))
        graded = [f.grade(strict) for f in fs]
        if graded:
            verdict: Verdict = min(graded, key=ORDER.__getitem__)
            reason = next(f.message for f in fs if f.grade(strict) == verdict)
        elif any(c.verdict == "PASS" for c in clauses):
            verdict, reason = "PASS", ""
        else:
            verdict = "SKIP"
            reason = (
                rule_skip
                or next((c.reason for c in clauses if c.reason), "")
                or "no selected check examined this rule"
            )
        rv = RuleVerdict(
            r.id, r.level, r.family, r.title, verdict, reason,
            sorted(set(tests.get(r.id, []))), fs, clauses, notes.get(r.id, []),
        )  # fmt: skip
        if verdict == "PASS" and rv.partial:
            rv.reason = rv.partial
        out.append(rv)
    return out


def flaky_gates(strict: bool, policy: FlakyPolicy | str | None = None) -> bool:
    """Whether a FLAKY rule fails the run: `--flaky=fail|warn` says so, else only under --strict."""
    return policy == "fail" if policy else strict


def overall(
    verdicts: list[RuleVerdict], xpass_fails: bool = False, flaky_fails: bool = False
) -> Literal["PASS", "FAIL", "ERROR"]:
    """FAIL when a rule failed (or, with `xpass_fails` (--strict-expectations), an expected failure
    passed; with `flaky_fails` (see flaky_gates), a failure did not recur); ERROR when none failed
    but the run could not judge one; else PASS. XFAIL never fails."""
    gating = (
        {"FAIL"} | ({"XPASS"} if xpass_fails else set()) | ({"FLAKY"} if flaky_fails else set())
    )
    if any(v.verdict in gating for v in verdicts):
        return "FAIL"
    if any(v.verdict == "ERROR" for v in verdicts):
        return "ERROR"
    return "PASS"


def counts(verdicts: list[RuleVerdict]) -> dict[str, int]:
    c = dict.fromkeys(VERDICTS, 0)
    for v in verdicts:
        c[v.verdict] += 1
    return c


def sole(rule: str) -> str:
    """The clause id of a single-clause rule (for reports that name clauses)."""
    return clause_of(rule, None) if len(RULES[rule].clauses) == 1 else SOLE
