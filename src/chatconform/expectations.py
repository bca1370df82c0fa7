"""Known-failure expectations with expiry: a tracked deviation does not fail every build.

A file (YAML or TOML) lists entries `{rule, clause?, reason, link?, expires}`. Applied once to the
graded verdicts of a run (`apply`), each entry ends in one of four states:

- xfail: the rule (clause) failed as expected; the rule is reported XFAIL and does not fail the run;
- xpass: the rule (clause) now passes: "remove this entry" (fails the run under
  `--strict-expectations`);
- expired: the entry's date has passed: the failure gates again, and the message names the entry;
- unobserved: the run did not judge the rule (SKIP, ERROR): nothing is concluded, the entry stays.

Anchors: web-platform-tests expectation files, Schemathesis baselines ("a failure not seen this run is
unobserved, not fixed"), pytest's `xfail(strict=True)`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from chatconform.errors import UsageError
from chatconform.rules import RULES
from chatconform.verdicts import ORDER, Finding, RuleVerdict

DEFAULT_FILE = "chatconform-expectations.yaml"
DEFAULT_DAYS = 30
PLACEHOLDER_REASON = "TODO: why this rule fails and where it is tracked"
KEYS = ("rule", "clause", "reason", "link", "expires")
FAILING = ("FAIL", "FLAKY", "WARN")  # verdicts an entry can expect
Status = Literal["xfail", "xpass", "expired", "unobserved"]


class ExpectationsError(UsageError):
    """The expectations file cannot be used: exit 2 with this one line."""


@dataclass(frozen=True, slots=True)
class Expectation:
    rule: str
    reason: str
    expires: dt.date
    clause: str | None = None
    link: str | None = None

    @property
    def scope(self) -> str:
        return f"{self.rule}/{self.clause}" if self.clause else self.rule

    @property
    def name(self) -> str:
        """How messages name the entry: `SSE-5 (expires 2027-01-31: "tracked in #12")`."""
        return f'{self.scope} (expires {self.expires.isoformat()}: "{self.reason}")'

    def active(self, today: dt.date) -> bool:
        return today <= self.expires

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule}
        if self.clause:
            out["clause"] = self.clause
        out["reason"] = self.reason
        if self.link:
            out["link"] = self.link
        out["expires"] = self.expires.isoformat()
        return out


@dataclass(frozen=True, slots=True)
class EntryResult:
    entry: Expectation
    status: Status
    verdict: str  # what the run graded the entry's rule (clause) before expectations
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            **self.entry.to_json(),
            "status": self.status,
            "observed": self.verdict,
            "message": self.message,
        }


# -- reading ----------------------------------------------------------------------------------
def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ExpectationsError(f"{where}: expires {value!r} is not a date (YYYY-MM-DD)") from None


def parse_entries(raw: Any, source: str) -> list[Expectation]:
    """Entries from the parsed file: a list, or a mapping with an `expectations` list."""
    if isinstance(raw, dict):
        extra = sorted(set(raw) - {"expectations"})
        if extra:
            raise ExpectationsError(
                f"{source}: unknown top-level key {extra[0]!r}; valid: expectations"
            )
        raw = raw.get("expectations") or []
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise ExpectationsError(f"{source}: expected a list of entries under 'expectations'")
    out: list[Expectation] = []
    seen: set[tuple[str, str | None]] = set()
    for i, item in enumerate(raw, 1):
        where = f"{source}: entry {i}"
        if not isinstance(item, dict):
            raise ExpectationsError(f"{where}: an entry is a mapping of {', '.join(KEYS)}")
        unknown = sorted(set(item) - set(KEYS))
        if unknown:
            raise ExpectationsError(
                f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(KEYS)}"
            )
        for key in ("rule", "reason", "expires"):
            if item.get(key) in (None, ""):
                raise ExpectationsError(f"{where}: {key!r} is required")
        rid = str(item["rule"]).strip()
        if rid not in RULES:
            raise ExpectationsError(
                f"{where}: unknown rule {rid!r}; rules are e.g. {', '.join(list(RULES)[:4])}, ..."
            )
        clause = item.get("clause")
        clause = str(clause).strip() if clause not in (None, "") else None
        if clause is not None and clause not in RULES[rid].clause_ids:
            valid = ", ".join(RULES[rid].clause_ids)
            raise ExpectationsError(
                f"{where}: {rid} has no clause {clause!r}; its clauses: {valid}"
            )
        if clause is not None and len(RULES[rid].clauses) == 1:
            clause = None  # the sole clause is the rule
        key = (rid, clause)
        if key in seen:
            raise ExpectationsError(
                f"{where}: a second entry for {rid}{'/' + clause if clause else ''}"
            )
        seen.add(key)
        link = item.get("link")
        out.append(
            Expectation(
                rule=rid,
                reason=str(item["reason"]).strip(),
                expires=_date(item["expires"], where),
                clause=clause,
                link=str(link) if link else None,
            )
        )
    return out


def load(path: str | Path) -> list[Expectation]:
    """Read an expectations file: `.toml` as TOML (`[[expectations]]`), anything else as YAML."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExpectationsError(
            f"cannot read expectations file {p}: {exc.strerror or exc}"
        ) from None
    try:
        raw = tomllib.loads(text) if p.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExpectationsError(f"expectations file {p} is not valid: {first}") from None
    return parse_entries(raw, str(p))


# -- applying ---------------------------------------------------------------------------------
def _covers(entry: Expectation, f: Finding) -> bool:
    """An entry expects the target's failures only: an ERROR (harness, budget) is never expected."""
    return (
        f.kind == "target"
        and f.rule == entry.rule
        and (entry.clause is None or f.clause_id == entry.clause)
    )


def _failing(rv: RuleVerdict, strict: bool) -> list[Finding]:
    return [f for f in rv.findings if f.kind == "target" and f.grade(strict) in FAILING]


def _scope_verdict(rv: RuleVerdict, entry: Expectation) -> tuple[str, str]:
    """The graded verdict and reason of what the entry names: the rule, or one of its clauses."""
    if entry.clause is None:
        return rv.verdict, rv.reason
    for c in rv.clauses:
        if c.id == entry.clause:
            return c.verdict, c.reason
    return rv.verdict, rv.reason


def apply(
    verdicts: Iterable[RuleVerdict],
    entries: Iterable[Expectation],
    today: dt.date,
    strict: bool = False,
) -> tuple[list[RuleVerdict], list[EntryResult]]:
    """The verdicts with the expectations applied, and what became of each entry.

    Pure: the given verdicts are not changed. `strict` is the run's --strict (how its findings
    were graded).
    """
    by_rule: dict[str, list[Expectation]] = {}
    for e in entries:
        by_rule.setdefault(e.rule, []).append(e)
    out: list[RuleVerdict] = []
    results: list[EntryResult] = []
    for rv in verdicts:
        mine = by_rule.pop(rv.id, [])
        if not mine:
            out.append(rv)
            continue
        new, res = _apply_rule(rv, mine, today, strict)
        out.append(new)
        results += res
    for left in by_rule.values():  # rules the run did not grade at all
        results += [
            EntryResult(
                e, "unobserved", "SKIP", f"{e.scope}: not graded by this run; the entry stays"
            )
            for e in left
        ]
    return out, results


def _apply_rule(
    rv: RuleVerdict, entries: list[Expectation], today: dt.date, strict: bool
) -> tuple[RuleVerdict, list[EntryResult]]:
    results: list[EntryResult] = []
    failing = _failing(rv, strict)
    active = [e for e in entries if e.active(today)]
    clause_marks: dict[str, str] = {}
    for e in entries:
        v, why = _scope_verdict(rv, e)
        if v in FAILING:
            if e.active(today):
                status: Status = "xfail"
                msg = f"{e.scope}: failed as expected ({e.reason}; until {e.expires})"
                mark = "XFAIL"
            else:
                status = "expired"
                msg = (
                    f"{e.scope}: the expectation expired on {e.expires} and the rule still fails: "
                    f"fix it or renew the entry {e.name}"
                )
                mark = ""
        elif v == "PASS":
            status = "xpass"
            msg = f"{e.scope}: passes now: remove this entry {e.name}"
            mark = "XPASS"
        else:
            status = "unobserved"
            msg = f"{e.scope}: not judged by this run ({v}: {why or 'not exercised'}); the entry stays"
            mark = ""
        if e.clause is not None and mark:
            clause_marks[e.clause] = mark
        results.append(EntryResult(e, status, v, msg[:500]))

    clauses = [
        dataclasses.replace(c, verdict=clause_marks[c.id]) if c.id in clause_marks else c
        for c in rv.clauses
    ]
    verdict, reason = rv.verdict, rv.reason
    if rv.verdict in FAILING and failing:
        uncovered = [f for f in rv.findings if not any(_covers(e, f) for e in active)]
        remaining = [g for g in (f.grade(strict) for f in uncovered if not f.is_note) if g in ORDER]
        if not remaining:
            xf = next(r for r in results if r.status == "xfail")
            verdict, reason = "XFAIL", f"expected failure ({xf.entry.reason}): {rv.reason}"
        else:
            verdict = min(remaining, key=ORDER.__getitem__)  # type: ignore[assignment]
            gone = [r for r in results if r.status == "expired"]
            if verdict in FAILING and gone:
                reason = f"{gone[0].message}; {rv.reason}"
    elif rv.verdict == "PASS" and any(r.status == "xpass" for r in results):
        verdict = "XPASS"
        reason = next(r.message for r in results if r.status == "xpass")
    new = dataclasses.replace(rv, verdict=verdict, reason=reason[:500], clauses=clauses)
    new.expectations = [r.to_json() for r in results]
    return new, results


def expected_test_failure(
    findings: Iterable[Finding], entries: Iterable[Expectation], today: dt.date
) -> Expectation | None:
    """The active entry that covers every one of a test's failing findings (None: not all covered).

    Used to show such a test as xfailed in JUnit instead of failed."""
    active = [e for e in entries if e.active(today)]
    first: Expectation | None = None
    for f in findings:
        e = next((e for e in active if _covers(e, f)), None)
        if e is None:
            return None
        first = first or e
    return first


def gates(results: Iterable[EntryResult], strict_expectations: bool) -> list[EntryResult]:
    """The entries that fail the run on their own: XPASS under --strict-expectations."""
    return [r for r in results if strict_expectations and r.status == "xpass"]


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


# -- writing ----------------------------------------------------------------------------------
def update_from_summary(
    summary: dict[str, Any], existing: list[Expectation], today: dt.date
) -> tuple[list[Expectation], list[str]]:
    """Entries for a run's failures: existing entries keep their reason, link and expiry; a new
    failure gets a placeholder reason and `today + 30 days`. Entries whose rule the run did not
    judge stay (unobserved is not fixed); entries whose rule passed are dropped. Returns the
    entries and a line per change."""
    rules = {r["id"]: r for r in summary.get("rules") or []}
    old = {(e.rule, e.clause): e for e in existing}
    out: list[Expectation] = []
    notes: list[str] = []
    for rid, r in rules.items():
        if rid not in RULES:
            continue
        observed = (r.get("expectations") or [{}])[0].get("observed") or r.get("verdict")
        failed = r.get("verdict") in (*FAILING, "XFAIL") or observed in FAILING
        rule_entries = [e for e in existing if e.rule == rid]
        if failed:
            kept = [e for e in rule_entries if e.clause is None] or [
                e for e in rule_entries if _clause_failed(r, e.clause)
            ]
            if kept:
                out += kept
                continue
            out.append(
                Expectation(rid, PLACEHOLDER_REASON, today + dt.timedelta(days=DEFAULT_DAYS))
            )
            notes.append(f"added {rid} (expires {today + dt.timedelta(days=DEFAULT_DAYS)})")
        elif r.get("verdict") in ("PASS", "XPASS"):
            notes += [f"removed {e.scope}: passes now" for e in rule_entries]
        else:
            out += rule_entries  # not judged: unobserved, never taken as fixed
            notes += [f"kept {e.scope}: not judged by this run" for e in rule_entries]
    for key, e in old.items():
        if key[0] not in rules:
            out.append(e)
    order = {rid: i for i, rid in enumerate(RULES)}
    out.sort(key=lambda e: (order.get(e.rule, 10**6), e.clause or ""))
    return out, notes


def _clause_failed(rule: dict[str, Any], clause: str | None) -> bool:
    for c in rule.get("clauses") or []:
        if c.get("id") == clause:
            return c.get("verdict") in (*FAILING, "XFAIL")
    return False


def dump(entries: list[Expectation], path: Path) -> str:
    """The file's text (YAML, or TOML for a .toml path)."""
    if path.suffix.lower() == ".toml":
        blocks = []
        for e in entries:
            lines = ["[[expectations]]"]
            for k, v in e.to_json().items():
                lines.append(f"{k} = {_toml_value(k, v)}")
            blocks.append("\n".join(lines))
        return _comment(_HEADER) + "\n" + "\n\n".join(blocks) + "\n"
    body = yaml.safe_dump(
        {"expectations": [{**e.to_json(), "expires": e.expires} for e in entries]},
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    return _comment(_HEADER) + "\n" + body


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" for line in text.splitlines())


def _toml_value(key: str, v: Any) -> str:
    if key == "expires":
        return str(v)  # a TOML local date
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


_HEADER = (
    "chatconform known-failure expectations (chatconform run --expectations FILE).\n"
    "Each entry: rule, optional clause, reason, optional link, expires (YYYY-MM-DD).\n"
    "An expected failure is XFAIL; a rule that passes is XPASS (remove the entry);\n"
    "after `expires` the failure fails the gate again.\n"
)


def summary_json(
    results: list[EntryResult], path: str | None, strict_expectations: bool
) -> dict[str, Any]:
    counts: dict[str, int] = dict.fromkeys(("xfail", "xpass", "expired", "unobserved"), 0)
    for r in results:
        counts[r.status] += 1
    return {
        "file": path,
        "strict": strict_expectations,
        "counts": counts,
        "entries": [r.to_json() for r in results],
    }


__all__ = [
    "DEFAULT_FILE",
    "EntryResult",
    "Expectation",
    "ExpectationsError",
    "apply",
    "dump",
    "expected_test_failure",
    "gates",
    "load",
    "parse_entries",
    "summary_json",
    "today_utc",
    "update_from_summary",
]


# -- JUnit ------------------------------------------------------------------------------------
def append_to_junit(junit: Path, section: dict[str, Any]) -> None:
    """Add a `chatconform.expectations` test suite to a run's junit.xml: one case per entry;
    xfail and unobserved as skipped (xfail typed `pytest.xfail`), expired as a failure, xpass as
    a failure under --strict-expectations, else skipped with "remove this entry"."""
    import xml.etree.ElementTree as ET

    if not junit.exists():
        return
    tree = ET.parse(junit)
    root = tree.getroot()
    if root.tag != "testsuites":
        wrapper = ET.Element("testsuites")
        wrapper.append(root)
        root = wrapper
        tree = ET.ElementTree(root)
    suite = ET.SubElement(root, "testsuite", name="chatconform.expectations")
    failures = skipped = 0
    for entry in section.get("entries") or []:
        scope = entry["rule"] + (f"/{entry['clause']}" if entry.get("clause") else "")
        case = ET.SubElement(suite, "testcase", classname="expectations", name=scope)
        status, message = entry["status"], entry["message"]
        fail = status == "expired" or (status == "xpass" and section.get("strict"))
        if fail:
            failures += 1
            ET.SubElement(case, "failure", message=f"{status.upper()}: {message}")
        else:
            skipped += 1
            kind = "pytest.xfail" if status == "xfail" else "chatconform." + status
            ET.SubElement(case, "skipped", type=kind, message=f"{status.upper()}: {message}")
    n = len(section.get("entries") or [])
    suite.set("tests", str(n))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    tree.write(junit, encoding="utf-8", xml_declaration=True)
