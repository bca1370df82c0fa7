"""Findings and verdicts: a rule's verdict is the worst of its findings, graded by level and strictness."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from chatconform.rules import RULES, Level

Verdict = Literal["PASS", "FAIL", "WARN", "SKIP"]
ORDER: dict[str, int] = {"FAIL": 0, "WARN": 1, "SKIP": 2, "PASS": 3}


@dataclass(slots=True)
class Finding:
    """One observed departure from a rule: what was expected, what came back, how to reproduce it."""

    rule: str
    expected: str
    got: str
    level: Level | None = (
        None  # None: the rule's own level; "C" when only a contract-decision part broke
    )
    reproduce: str | None = None
    evidence: dict[str, Any] | None = None
    test: str | None = None
    exchange: Any = field(
        default=None, repr=False, compare=False
    )  # record.Exchange, not serialized

    def effective_level(self) -> Level:
        return self.level or RULES[self.rule].level

    def grade(self, strict: bool) -> Verdict:
        return "FAIL" if strict or self.effective_level() == "D" else "WARN"

    @property
    def message(self) -> str:
        return f"expected {self.expected}; got {self.got}"

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "level": self.effective_level(),
            "message": self.message,
            "expected": self.expected,
            "got": self.got,
            "reproduce": self.reproduce,
            "evidence": self.evidence,
            "test": self.test,
        }

    def render(self, strict: bool) -> str:
        r = RULES[self.rule]
        lines = [
            f"{self.rule} ({self.effective_level()}, {self.grade(strict)}) {r.title}",
            f"  expected: {self.expected}",
            f"  got:      {self.got}",
        ]
        if self.reproduce:
            lines.append(f"  reproduce: {self.reproduce}")
        return "\n".join(lines)


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

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "level": self.level,
            "family": self.family,
            "title": self.title,
            "verdict": self.verdict,
            "reason": self.reason,
            "tests": self.tests,
            "findings": [f.to_json() for f in self.findings],
        }


def grade_rules(
    findings: list[Finding],
    exercised: dict[str, list[str]],
    skipped: dict[str, str],
    strict: bool,
    selected_families: list[str] | None = None,
) -> list[RuleVerdict]:
    """Verdict per rule: worst finding; PASS when exercised cleanly; SKIP (with reason) otherwise."""
    by_rule: dict[str, list[Finding]] = {}
    for f in findings:
        by_rule.setdefault(f.rule, []).append(f)
    out: list[RuleVerdict] = []
    for r in RULES.values():
        fs = by_rule.get(r.id, [])
        tests = exercised.get(r.id, [])
        if fs:
            verdict: Verdict = min((f.grade(strict) for f in fs), key=ORDER.__getitem__)
            reason = fs[0].message
        elif tests:
            verdict = "PASS"
            reason = f"partly not exercised: {skipped[r.id]}" if r.id in skipped else ""
        elif r.id in skipped:
            verdict, reason = "SKIP", skipped[r.id]
        elif selected_families is not None and r.family not in selected_families:
            verdict, reason = "SKIP", f"suite {r.family!r} not selected"
        else:
            verdict, reason = "SKIP", "no selected test exercised this rule"
        out.append(RuleVerdict(r.id, r.level, r.family, r.title, verdict, reason, tests, fs))
    return out


def overall(verdicts: list[RuleVerdict]) -> Literal["PASS", "FAIL"]:
    return "FAIL" if any(v.verdict == "FAIL" for v in verdicts) else "PASS"


def counts(verdicts: list[RuleVerdict]) -> dict[str, int]:
    c = {"PASS": 0, "FAIL": 0, "WARN": 0, "SKIP": 0}
    for v in verdicts:
        c[v.verdict] += 1
    return c
