"""allure-pytest integration: every conformance test's Allure result carries its rules and verdict.

`install(config, state)` is called from the chatconform pytest plugin's `pytest_configure`. When
pytest runs with `--alluredir DIR` (allure-pytest writes the results), it registers `AllureAugmenter`,
which, just before allure-pytest writes each test's result file, adds:

- labels `rule` (one per rule), `level` (D/C), `family`, `verdict` (PASS/FAIL/ERROR/WARN/SKIP, and
  XFAIL/XPASS with --expectations, FLAKY with --confirm), the
  Behaviors tree (`epic` = family / `feature` = rule / `story` = clause, for rules with several) and
  `severity` (D critical, C normal);
- a link per rule (`CHATCONFORM_RULE_URL`, a template with `{rule}`; by default the rule's row in
  the run's summary.html, `../summary.html#rule-<id>`, as seen from `<run>/allure-report/`);
- a status that matches chatconform's grading (a contract failure or a target that did not answer is
  `failed`, a contract-decision warning stays `passed` with a `CONTRACT WARN` message, an ERROR (a
  harness exception, a request the run's budget did not send) is `broken`; an expected failure
  (XFAIL) is `skipped` with an `XFAIL` message, as allure-pytest shows pytest's xfail; a passing
  test of a rule an expectation says fails is `passed` with an `XPASS ... remove this entry` message;
  a failure that did not recur on re-run (FLAKY) is marked flaky, `passed` unless FLAKY gates the
  run), with messages that categories.json sorts into separate categories; notes (level I) never
  change the status;
- for anything not PASS: the request and response, the SSE wire log with each frame's arrival time,
  the curl line that reproduces it, and the findings as JSON.

At the end of the session it writes `environment.properties` (target, harness version, spec hash,
strictness, seed) and `categories.json`, and scrubs every file in the results directory of secrets.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from chatconform.report.evidence import evidence_key, request_response_text, sse_wire_text
from chatconform.report.redact import scrub

try:  # allure-pytest is a dependency, but keep the harness usable without it
    import allure_commons
    from allure_commons.model2 import Attachment, Label, Link, Status, StatusDetails
except ImportError:  # pragma: no cover
    allure_commons = None  # type: ignore[assignment]

RULE_URL_ENV = "CHATCONFORM_RULE_URL"
DEFAULT_RULE_URL = "../summary.html#rule-{rule}"
MAX_EXCHANGES_ATTACHED = 4

# Allure 2 categories.json (Allure 3 reads the same rules through allurerc `categories`).
# Regexes are anchored with ^ and end in [\s\S]* so Java's full match and JS's search agree.
CATEGORIES: list[dict[str, Any]] = [
    {
        "name": "Target did not answer (FAIL): unreachable or timed out",
        "matchedStatuses": ["failed"],
        "messageRegex": r"^TARGET UNREACHABLE OR TIMED OUT[\s\S]*",
    },
    {
        "name": "Contract failures: documented rules (D)",
        "matchedStatuses": ["failed"],
        "messageRegex": r"^CONTRACT FAIL \(D\)[\s\S]*",
    },
    {
        "name": "Contract failures: contract decisions (C, --strict)",
        "matchedStatuses": ["failed"],
        "messageRegex": r"^CONTRACT FAIL \(C\)[\s\S]*",
    },
    {
        "name": "Contract-decision warnings (C)",
        "matchedStatuses": ["passed"],
        "messageRegex": r"^CONTRACT WARN[\s\S]*",
    },
    {
        "name": "Expected failures (XFAIL): known failures in the expectations file",
        "matchedStatuses": ["skipped"],
        "messageRegex": r"^XFAIL[\s\S]*",
    },
    {
        "name": "Expected failures that pass now (XPASS): remove the entry",
        "matchedStatuses": ["passed"],
        "messageRegex": r"^XPASS[\s\S]*",
    },
    {
        "name": "Flaky (FLAKY): failures that did not recur when re-run",
        "matchedStatuses": ["passed", "failed"],
        "messageRegex": r"^FLAKY[\s\S]*",
    },
    {
        "name": "Run errors (ERROR): requests the run's budget did not send",
        "matchedStatuses": ["broken"],
        "messageRegex": r"^NOT SENT[\s\S]*",
    },
    {
        "name": "Run errors (ERROR): exceptions in the harness",
        "matchedStatuses": ["broken"],
    },
]


def pytest_args(report_dir: Path) -> list[str]:
    """What `chatconform run` passes to pytest so that every run writes Allure results."""
    return ["--alluredir", str(Path(report_dir) / "allure-results"), "--clean-alluredir"]


def install(config: pytest.Config, state: Any) -> AllureAugmenter | None:
    """Register the augmenter when allure-pytest is writing results (`--alluredir`)."""
    if allure_commons is None:
        return None
    alluredir = config.getoption("allure_report_dir", default=None)
    if not alluredir:
        return None
    aug = AllureAugmenter(config, state, Path(alluredir))
    config.pluginmanager.register(aug, "chatconform-allure")
    allure_commons.plugin_manager.register(aug.allure_hooks)
    return aug


def allure_entries(alluredir: Path) -> dict[str, dict[str, str]]:
    """Per rule, per test verdict: the Allure 3 test-result id of a result labelled with that rule
    (Allure 3 names a result md5(its uuid); its page is `index.html#<id>`). Unreadable files are
    passed over: a link is a convenience, never a reason for a report to fail."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted(alluredir.glob("*-result.json")):
        try:
            r = json.loads(path.read_text(encoding="utf-8"))
            labels = [(lb["name"], lb["value"]) for lb in r.get("labels", [])]
            uid = str(r["uuid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        verdict = next((v for n, v in labels if n == "verdict"), "")
        for name, value in labels:
            if name == "rule":
                out.setdefault(value, {}).setdefault(verdict, hashlib.md5(uid.encode()).hexdigest())
    return out


def rule_url(rule_id: str) -> str:
    return os.environ.get(RULE_URL_ENV, DEFAULT_RULE_URL).replace("{rule}", rule_id)


def spec_sha256() -> str:
    try:
        from chatconform.spec import SPEC_PATH

        return hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest()
    except OSError:
        return "unavailable"


def _props_escape(value: str) -> str:
    out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return "".join(c if ord(c) < 128 else f"\\u{ord(c):04x}" for c in out)


def write_environment(alluredir: Path, env: dict[str, str]) -> Path:
    lines = [f"{k}={_props_escape(v)}" for k, v in env.items()]
    path = alluredir / "environment.properties"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_categories(alluredir: Path) -> Path:
    path = alluredir / "categories.json"
    path.write_text(json.dumps(CATEGORIES, indent=2), encoding="utf-8")
    return path


def _declared_rules(item: pytest.Item) -> list[str]:
    ids: list[str] = []
    for mark in item.iter_markers("rule"):
        ids.extend(str(a) for a in mark.args)
    return ids


def behaviour_labels(rules: list[Any], clauses: set[tuple[str, str]]) -> list[Any]:
    """Allure's behaviour labels, so its Behaviors tree lists the contract rule by rule: epic = the
    rule family, feature = the rule (`SSE-4: title`), story = a clause of a rule with several
    (`SSE-4/delta: what it covers`) that this test examined or charged. Allure nests every epic x
    feature x story a result carries, so a story names its rule."""
    labels: list[Any] = []
    for family in dict.fromkeys(r.family for r in rules):
        labels.append(Label(name="epic", value=family))
    for r in rules:
        labels.append(Label(name="feature", value=feature_name(r)))
    for r in rules:
        if len(r.clauses) < 2:
            continue
        for cid, what in r.clauses:
            if (r.id, cid) in clauses:
                labels.append(Label(name="story", value=f"{r.id}/{cid}: {what}"))
    return labels


def feature_name(rule: Any) -> str:
    """The Allure feature of a rule (the summary page's link finds it by this name too)."""
    return f"{rule.id}: {rule.title}"


class _AllureHooks:
    """The allure-commons side: runs before allure's file logger writes a test result."""

    def __init__(self, owner: AllureAugmenter) -> None:
        self.owner = owner

    if allure_commons is not None:

        @allure_commons.hookimpl(tryfirst=True)
        def report_result(self, result: Any) -> None:
            self.owner.augment(result)


class AllureAugmenter:
    """The pytest side: knows the current test and its reports; the RunState holds the findings."""

    def __init__(self, config: pytest.Config, state: Any, alluredir: Path) -> None:
        self.config = config
        self.state = state
        self.alluredir = alluredir
        self.current: pytest.Item | None = None
        self.reports: list[pytest.TestReport] = []
        self.allure_hooks = _AllureHooks(self)

    # -- pytest hooks ---------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)  # around whichever protocol runs it (chatconform.confirm's)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, object, object]:
        self.current = item
        self.reports = []
        return (yield)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.current is not None and report.nodeid == self.current.nodeid:
            self.reports.append(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if getattr(session.config, "workerinput", None) is not None:
            return
        self.alluredir.mkdir(parents=True, exist_ok=True)
        write_environment(self.alluredir, self.environment())
        write_categories(self.alluredir)
        self.scrub_dir()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if allure_commons is not None:
            with contextlib.suppress(ValueError):
                allure_commons.plugin_manager.unregister(self.allure_hooks)

    # -- environment ----------------------------------------------------------------------------
    def secrets(self) -> list[tuple[str, str]]:
        target = getattr(self.state, "target", None)
        return list(target.secrets().items()) if target is not None else []

    def environment(self) -> dict[str, str]:
        from chatconform import __version__

        target = getattr(self.state, "target", None)
        seed = self.config.getoption("cc_fuzz_seed", default=None)
        if seed is None:
            seed = getattr(self.state, "fuzz_seed", None)
        families = getattr(self.state, "families", None)
        env = {
            "target": target.base_url if target is not None else "unknown",
            "target.embedded": str(bool(target and target.embedded)).lower(),
            "harness.version": f"chatconform {__version__}",
            "spec.sha256": spec_sha256(),
            "strictness": "strict (contract decisions FAIL)"
            if self.state.strict
            else "default (contract decisions WARN)",
            "seed": str(seed) if seed is not None else "unset (the fuzz suite chose its own)",
            "suites": ",".join(families) if families else "all",
            "python": platform.python_version(),
        }
        return {k: scrub(v, self.secrets()) for k, v in env.items()}

    def scrub_dir(self) -> None:
        """Rewrite any results file that holds a secret value (e.g. captured output)."""
        secrets = self.secrets()
        for path in self.alluredir.iterdir():
            if not path.is_file() or path.stat().st_size > 20 * 1024 * 1024:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            clean = scrub(text, secrets)
            if clean != text:
                path.write_text(clean, encoding="utf-8")

    # -- the result -----------------------------------------------------------------------------
    def _attach(self, result: Any, name: str, body: str, mime: str = "text/plain") -> None:
        ext = "json" if mime == "application/json" else "txt"
        file_name = f"{uuid.uuid4()}-attachment.{ext}"
        allure_commons.plugin_manager.hook.report_attached_data(
            body=scrub(body, self.secrets()).encode("utf-8"), file_name=file_name
        )
        result.attachments.append(Attachment(name=name, source=file_name, type=mime))

    def _clauses(self, item: pytest.Item, findings: list[Any]) -> set[tuple[str, str]]:
        """The (rule, clause) pairs this test examined or charged a finding to."""
        from chatconform.plugin import EXPECT

        stash = getattr(item, "stash", None)
        expect = stash.get(EXPECT, None) if stash is not None else None
        seen: set[tuple[str, str]] = set(expect.outcome.examined) if expect is not None else set()
        seen |= {(f.rule, f.clause_id) for f in findings if f.clause_id}
        return seen

    def augment(self, result: Any) -> None:
        item = self.current
        if item is None:
            return
        from chatconform.rules import RULES

        declared = _declared_rules(item)
        findings = [f for f in self.state.findings if f.test == item.nodeid]
        if not declared and not findings:
            return
        strict = bool(self.state.strict)
        judged = [f for f in findings if not f.is_note]
        errors = [f for f in judged if f.grade(strict) == "ERROR"]
        fails = [f for f in judged if f.grade(strict) == "FAIL"]
        warns = [f for f in judged if f.grade(strict) == "WARN"]
        flaky = [f for f in judged if f.grade(strict) == "FLAKY"]
        skipped = any(r.skipped for r in self.reports)
        pytest_failed = any(r.failed for r in self.reports)
        wasxfail = next((str(r.wasxfail) for r in self.reports if hasattr(r, "wasxfail")), None)
        xpass = self._xpass(declared, findings, item) if not (judged or skipped) else None
        if wasxfail is not None and fails and not errors:
            verdict = "XFAIL"  # every failure of it is a known one (plugin._mark_expected)
        elif fails or (pytest_failed and not judged):
            verdict = "FAIL"
        elif errors:
            verdict = "ERROR"
        elif flaky:
            verdict = "FLAKY"
        elif warns:
            verdict = "WARN"
        elif skipped:
            verdict = "SKIP"
        elif xpass is not None:
            verdict = "XPASS"
        else:
            verdict = "PASS"

        rule_ids = list(dict.fromkeys([*declared, *(f.rule for f in judged)]))
        known = [RULES[r] for r in rule_ids if r in RULES]
        clauses = self._clauses(item, findings)
        labels: list[Any] = []
        for r in known:
            labels.append(Label(name="rule", value=r.id))
        for level in dict.fromkeys(r.level for r in known):
            labels.append(Label(name="level", value=level))
        for family in dict.fromkeys(r.family for r in known):
            labels.append(Label(name="family", value=family))
        # Allure's Behaviors: epic = the rule's family, feature = the rule, story = the clause
        labels += behaviour_labels(known, clauses)
        labels.append(Label(name="verdict", value=verdict))
        severity = "critical" if any(r.level == "D" for r in known) else "normal"
        labels.append(Label(name="severity", value=severity))
        labels += [Label(name="tag", value=t) for t in [*(r.id for r in known), verdict]]
        replace = {"severity", "epic", "feature", "story"}
        kept = [lb for lb in result.labels if lb.name not in replace] + labels
        # a re-run (--confirm) passes allure-pytest's teardown hook again: one of each label
        result.labels = list({(lb.name, lb.value): lb for lb in kept}.values())
        result.links = list(result.links) + [
            Link(type="link", url=rule_url(r.id), name=f"{r.id}: {r.title}") for r in known
        ]
        desc = [f"**Verdict: {verdict}**", ""]
        desc += [
            f"- **{r.id}** ({'documented' if r.level == 'D' else 'contract decision'}, {r.level}): "
            f"{r.title}"
            for r in known
        ]
        result.description = "\n".join(desc)

        secrets = self.secrets()
        bad = errors + fails + flaky + warns
        trace = scrub("\n\n".join(self._render(f, strict) for f in bad), secrets) or None
        harness = [f for f in errors if f.kind == "harness"] or [
            f for f in fails if f.got.startswith("harness error")
        ]
        budget = [f for f in errors if f.kind == "budget"]
        transport = [
            f
            for f in fails
            if f.evidence and f.evidence.get("response") is None and f.evidence.get("error")
        ]
        if harness:
            result.status = Status.BROKEN
            message = f"HARNESS ERROR in {harness[0].rule}: {harness[0].got}"
        elif budget:
            result.status = Status.BROKEN
            message = f"NOT SENT: run budget ({budget[0].rule}): {budget[0].got}"
        elif verdict == "XFAIL":
            result.status = Status.SKIPPED  # as allure-pytest shows a pytest xfail
            message = f"{wasxfail}: {fails[0].rule}: {fails[0].message}"
            if not message.startswith("XFAIL"):
                message = f"XFAIL {message}"
        elif transport:
            result.status = Status.FAILED  # the target's doing: FAIL, not the run's ERROR
            message = f"TARGET UNREACHABLE OR TIMED OUT ({transport[0].rule}): {transport[0].got}"
        elif fails:
            first = sorted(fails, key=lambda f: f.effective_level() != "D")[0]
            result.status = Status.FAILED
            message = f"CONTRACT FAIL ({first.effective_level()}) {first.rule}: {first.message}"
            if len(fails) > 1:
                message += f" (+{len(fails) - 1} more)"
        elif flaky:
            gates = bool(getattr(self.state, "flaky_fails", False))
            result.status = Status.FAILED if gates else Status.PASSED
            message = f"FLAKY {flaky[0].rule}: {flaky[0].message}"
            if len(flaky) > 1:
                message += f" (+{len(flaky) - 1} more)"
        elif warns:
            result.status = Status.PASSED
            message = f"CONTRACT WARN (C) {warns[0].rule}: {warns[0].message}"
            if len(warns) > 1:
                message += f" (+{len(warns) - 1} more)"
        elif verdict == "XPASS":
            result.status = Status.PASSED
            message = f"XPASS {xpass}"
        elif verdict == "PASS":
            result.status = Status.PASSED  # a WARN-only Fatal looked "broken" to allure-pytest
            result.statusDetails = None
            message = ""
        else:
            message = ""
        if message:
            result.statusDetails = StatusDetails(
                message=scrub(message, secrets), trace=trace, flaky=bool(flaky) or None
            )

        if bad:
            self._attach_evidence(result, bad, strict)

    def _xpass(self, declared: list[str], findings: list[Any], item: pytest.Item) -> str | None:
        """For a test that passed: the active expectation of a rule it examined clean (the rule's
        own XPASS is decided at the end of the run, from every test of it), as a message."""
        entries = getattr(self.state, "expectations", None) or []
        if not entries:
            return None
        from chatconform.expectations import today_utc

        examined = {rule for rule, _ in self._clauses(item, findings)}
        today = today_utc()
        for entry in entries:
            if entry.rule in examined and entry.rule in declared and entry.active(today):
                return f"{entry.scope}: passes in this test: remove this entry {entry.name}"
        return None

    @staticmethod
    def _render(f: Any, strict: bool) -> str:
        text = f.render(strict)
        if f.test:
            text += f"\n  test: {f.test}"
        return text

    def _attach_evidence(self, result: Any, bad: list[Any], strict: bool) -> None:
        seen: set[str] = set()
        for f in bad:
            key = evidence_key(f.evidence)
            if key and key in seen:
                continue
            if len(seen) >= MAX_EXCHANGES_ATTACHED:
                break
            seen.add(key or f"{f.rule}:{f.message}")
            tag = f"{f.rule} {f.grade(strict)}"
            if f.evidence:
                self._attach(
                    result, f"{tag}: request and response", request_response_text(f.evidence)
                )
                wire = sse_wire_text(f.evidence)
                if wire:
                    self._attach(result, f"{tag}: SSE wire log (arrival times)", wire)
            if f.reproduce:
                self._attach(result, f"{tag}: reproduce (curl)", f.reproduce + "\n")
        findings = [f.to_json() | {"grade": f.grade(strict)} for f in bad]
        self._attach(
            result,
            "findings.json",
            json.dumps(findings, indent=2, ensure_ascii=False),
            "application/json",
        )
