"""The pytest plugin: target options, fixtures, findings turned into outcomes and per-rule verdicts.

Suites under suites/ run with it (`chatconform run`, or `pytest suites/ --base-url …`). A suite test
names its rules with `@pytest.mark.rule("SSE-5", ...)` and hands the findings of the checks to the
`expect` fixture; after the test, every response it provoked also goes through the checks that hold
for all responses (ERR-1, ERR-4, ENV-1, ...). A finding graded FAIL fails the test; the rule verdicts
are written to summary.json in the report directory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chatconform.budget import Budget
from chatconform.checks.errors import every_response
from chatconform.client import Client
from chatconform.embedded import EmbeddedError, EmbeddedServer, reference_args_from_env
from chatconform.record import Exchange
from chatconform.rules import FAMILIES, RULES, UnknownRule, rule
from chatconform.target import (
    TARGET_FIELDS,
    Limits,
    Target,
    TargetError,
    option_kwargs,
    resolve_target,
)
from chatconform.verdicts import (
    ClauseKey,
    Finding,
    Outcome,
    RuleVerdict,
    counts,
    grade_rules,
    overall,
)


class Fatal(Exception):
    """Raised by `expect.check(..., fatal=True)`: the findings are recorded, the test cannot go on."""


@dataclass
class RunState:
    strict: bool
    report_dir: Path
    limits: Limits
    families: list[str] | None
    target: Target | None = None
    budget: Budget | None = None
    interrupted: bool = False
    fuzz_seed: int | None = None  # set by the fuzz suite: the seed it ran with
    server: EmbeddedServer | None = None
    findings: list[Finding] = field(default_factory=list)
    exercised: dict[str, list[str]] = field(default_factory=dict)  # rule -> tests that examined it
    evidence: Counter[ClauseKey] = field(default_factory=Counter)  # observations examined
    unexercised: dict[ClauseKey, str] = field(default_factory=dict)  # a clause's own skip reason
    skipped: dict[str, str] = field(default_factory=dict)
    verdicts: list[RuleVerdict] = field(default_factory=list)
    harness_errors: list[str] = field(default_factory=list)


STATE = pytest.StashKey[RunState]()
_STATES: list[RunState] = []  # pytest_keyboard_interrupt is not given the config
EXPECT = pytest.StashKey["Expect"]()
LOG = pytest.StashKey[list[Exchange]]()


class Expect:
    """Collects one test's outcome: its findings and the evidence its checks examined."""

    def __init__(self) -> None:
        self.outcome = Outcome()

    @property
    def findings(self) -> list[Finding]:
        return list(self.outcome)

    def check(self, findings: Iterable[Finding], fatal: bool = False) -> bool:
        """Record a check's outcome (findings and evidence); with fatal=True stop the test when it
        found anything that is not a note. True when it found nothing but notes."""
        found = findings if isinstance(findings, Outcome) else Outcome(findings)
        self.outcome.extend(found)
        real = [f for f in found if not f.is_note]
        if real and fatal:
            raise Fatal(real[0].message)
        return not real

    def unexercised(self, rule_id: str, clause: str | None, reason: str) -> None:
        """Say why a clause could not be exercised here (e.g. the target names no tool prompt)."""
        self.outcome.not_exercised(rule_id, clause, reason)


def _opt_name(attr: str) -> str:
    return "--" + attr.replace("_", "-")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chatconform", "chatconform target and verdicts")
    for attr, (env, _, secret) in TARGET_FIELDS.items():
        what = "a secret; prefer the environment variable" if secret else "target setting"
        group.addoption(
            _opt_name(attr), dest=f"cc_{attr}", default=None, help=f"{what} ({env})",
            **option_kwargs(attr),
        )  # fmt: skip
    group.addoption("--target-file", dest="cc_target_file", default=None)
    group.addoption("--strict-contract", dest="cc_strict", action="store_true", default=False)
    group.addoption("--report-dir", dest="cc_report_dir", default=None)
    group.addoption("--timeout", dest="cc_timeout", type=float, default=None)
    group.addoption("--stream-timeout", dest="cc_stream_timeout", type=float, default=None)
    group.addoption("--max-body-mb", dest="cc_max_body_mb", type=float, default=None)
    group.addoption("--run-timeout", dest="cc_run_timeout", type=float, default=None)
    group.addoption(
        "--suite", dest="cc_families", action="append", default=None, metavar="NAME",
        help="the suites this run selected (rules of others are SKIP 'not selected'); repeatable",
    )  # fmt: skip
    group.addoption("--fuzz-seed", dest="cc_fuzz_seed", type=int, default=None)
    group.addoption("--fuzz-max-examples", dest="cc_fuzz_max_examples", type=int, default=None)
    group.addoption("--embedded-target", dest="cc_embedded", action="store_true", default=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rule(*ids): the contract rule ids a suite test checks")
    config.addinivalue_line("markers", "family(name): the suite family of a test")
    limits = Limits()
    if config.getoption("cc_timeout"):
        limits.timeout = config.getoption("cc_timeout")
    if config.getoption("cc_stream_timeout"):
        limits.stream_timeout = config.getoption("cc_stream_timeout")
    if config.getoption("cc_run_timeout"):
        limits.run_timeout = config.getoption("cc_run_timeout")
    if config.getoption("cc_max_body_mb"):
        limits.max_body_bytes = int(config.getoption("cc_max_body_mb") * 1024 * 1024)
    report_dir = config.getoption("cc_report_dir") or os.path.join(
        "reports", dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    fams = config.getoption("cc_families")
    config.stash[STATE] = state = RunState(
        strict=bool(config.getoption("cc_strict")),
        report_dir=Path(report_dir),
        limits=limits,
        families=[n for f in fams for n in f.split(",") if n] if fams else None,
    )
    _STATES.append(state)
    # allure (chatconform.report.allure_results): with --alluredir, label/attach/grade each result
    from chatconform.report.allure_results import install as install_allure

    install_allure(config, state)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """A marker naming a rule the registry does not know is an error at collection, not a no-op.
    When a collected test names a rule, the run needs a target: resolve it (or start the reference)."""
    suite_tests = False
    for item in items:
        for rid in _declared(item):
            suite_tests = True
            try:
                rule(rid)
            except UnknownRule as exc:
                raise pytest.UsageError(f"{item.nodeid}: {exc}") from None
    if suite_tests and getattr(config, "workerinput", None) is None:
        _start_target(config)


def _start_target(config: pytest.Config) -> None:
    state = config.stash[STATE]
    if state.target is not None:
        return
    explicit = {a: config.getoption(f"cc_{a}") for a in TARGET_FIELDS}
    try:
        state.target = resolve_target(explicit, config.getoption("cc_target_file"), state.limits)
        if state.target is not None:
            state.target.embedded = bool(config.getoption("cc_embedded"))
        else:
            state.server = EmbeddedServer(reference_args_from_env(), state.limits)
            state.target = state.server.start()
    except (TargetError, EmbeddedError) as exc:
        pytest.exit(str(exc), returncode=2)
    state.budget = Budget(state.limits)


def pytest_keyboard_interrupt(excinfo: Any) -> None:
    for state in _STATES:
        state.interrupted = True


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None and state in _STATES:
        _STATES.remove(state)
    if state is not None and state.server is not None:
        state.server.stop()
        state.server = None


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    state = request.config.stash[STATE]
    assert state.target is not None
    return state.target


@pytest.fixture(scope="session")
def strict(request: pytest.FixtureRequest) -> bool:
    return request.config.stash[STATE].strict


@pytest.fixture(scope="session")
def budget(request: pytest.FixtureRequest) -> Budget | None:
    """The run-wide bounds (deadline, breaker) that every client of the run shares."""
    return request.config.stash[STATE].budget


@pytest.fixture(scope="session")
def report_dir(request: pytest.FixtureRequest) -> Path:
    return request.config.stash[STATE].report_dir


@pytest.fixture(scope="session")
def fuzz_options(request: pytest.FixtureRequest) -> dict[str, int | None]:
    """--fuzz-seed and --fuzz-max-examples (None: the fuzz suite's defaults)."""
    return {
        "seed": request.config.getoption("cc_fuzz_seed"),
        "max_examples": request.config.getoption("cc_fuzz_max_examples"),
    }


@pytest.fixture
def expect(request: pytest.FixtureRequest) -> Expect:
    e = request.node.stash.setdefault(EXPECT, Expect())
    return e


@pytest.fixture
def api(request: pytest.FixtureRequest, target: Target) -> Iterator[Client]:
    log = request.node.stash.setdefault(LOG, [])
    with Client(target, log, request.config.stash[STATE].budget) as client:
        yield client


def unknown_id() -> str:
    """An id no server has issued (ids are opaque: no prefix or length is assumed)."""
    return f"cc-unknown-{uuid.uuid4().hex}"


def need(value: str | None, option: str) -> str:
    """The value of a target setting a test needs, or a SKIP naming how to give it."""
    if not value:
        attr = option.removeprefix("--").replace("-", "_")
        env = TARGET_FIELDS[attr][0]
        pytest.skip(f"not configured: give {option} or {env}")
    return value


# -- outcomes --------------------------------------------------------------------------------
def _declared(item: pytest.Item) -> list[str]:
    ids: list[str] = []
    for mark in item.iter_markers("rule"):
        ids.extend(mark.args)
    return ids


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    state = item.config.stash.get(STATE, None)
    declared = _declared(item)
    if state is None or not declared or call.when == "teardown":
        return
    if report.skipped:
        reason = _skip_reason(report)
        expect = item.stash.get(EXPECT, None)
        if expect is not None:  # the clause it could not exercise, said before skipping
            for key, why in expect.outcome.unexercised.items():
                state.unexercised.setdefault(key, why)
        for rid in declared:
            state.skipped.setdefault(rid, reason)
        return
    if call.when == "setup" and report.passed:
        return
    target = state.target
    expect = item.stash.get(EXPECT, Expect())
    log = item.stash.get(LOG, [])
    found = Outcome()
    found.extend(expect.outcome)
    for ex in log:
        found.extend(every_response(ex))
    if call.excinfo is not None and not call.excinfo.errisinstance(Fatal):
        found.extend(_error_findings(item, call, declared, log, found))
    for f in found:
        f.test = item.nodeid
        if f.kind == "target" and f.exchange is not None and f.exchange.not_sent:
            f.kind = "budget"  # a request the run did not send proves nothing about the target
        if f.exchange is not None and target is not None:
            f.reproduce = f.exchange.curl(target)
            f.evidence = f.exchange.evidence(target)
        elif f.exchange is None and log and target is not None:
            f.reproduce = log[-1].curl(target)
        f.exchange = None
    state.findings.extend(found)
    state.evidence.update(found.examined)
    for key, why in found.unexercised.items():
        state.unexercised.setdefault(key, why)
    completed = call.when == "call" and call.excinfo is None
    if not completed:
        # a test stopped early proves nothing about the rules it did not get to
        cause = next((f for f in found if not f.is_note), None)
        why = f"{cause.rule}: {cause.message}" if cause else "an error"
        judged = {f.rule for f in found} | found.rules_examined()
        for rid in set(declared) - judged:
            state.skipped.setdefault(rid, f"not reached: {item.name} stopped on {why}"[:300])
    for rid in found.rules_examined() | {f.rule for f in found if not f.is_note}:
        state.exercised.setdefault(rid, []).append(item.nodeid)
    failing = [f for f in found if f.grade(state.strict) == "FAIL"]
    warnings = [f for f in found if f.grade(state.strict) == "WARN"]
    for w in warnings:
        report.user_properties.append(("chatconform-warn", f"{w.rule}: {w.message}"))
    if failing:
        report.outcome = "failed"
        text = "\n\n".join(f.render(state.strict) for f in failing)
        if target is not None:
            text = target.redact(text)
        report.longrepr = text
    elif (
        call.when == "call"
        and report.failed
        and call.excinfo is not None
        and call.excinfo.errisinstance(Fatal)
    ):
        report.outcome = "passed"  # only WARN-graded findings stopped it


def _skip_reason(report: pytest.TestReport) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2]).removeprefix("Skipped: ")
    return str(lr)


def _error_findings(
    item: pytest.Item,
    call: pytest.CallInfo[None],
    declared: list[str],
    log: list[Exchange],
    found: Outcome,
) -> list[Finding]:
    """An exception in a test. The target's doing when its last request failed in transport (it
    did not answer); an ERROR of every rule the test aimed at when the run did not send the request
    (budget) or when the harness itself broke: those prove nothing about the target."""
    assert call.excinfo is not None
    last = log[-1] if log else None
    if last is not None and last.error and not last.not_sent:
        if any(f.exchange is last or f.rule in declared for f in found if not f.is_note):
            return []  # the checks already charged the failed request to the rule it broke
        got = f"{last.method} {last.url}: {last.error}"
        return [Finding(declared[0], "the test to complete", got[:500], exchange=last)]
    if last is not None and last.not_sent:
        got, kind = f"{last.method} {last.url}: {last.error}", "budget"
    else:
        exc = call.excinfo.value
        got, kind = f"harness error {type(exc).__name__}: {exc}", "harness"
        item.config.stash[STATE].harness_errors.append(f"{item.nodeid}: {got}")
    return [
        Finding(rid, "the harness to judge this rule", got[:500], kind=kind)  # type: ignore[arg-type]
        for rid in dict.fromkeys(declared)
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None or state.target is None or not session.items:
        return  # no suite test ran (e.g. the self-tests): nothing to judge
    if getattr(session.config, "workerinput", None) is not None:
        return
    state.verdicts = grade_rules(
        state.findings,
        state.evidence,
        state.skipped,
        state.strict,
        state.families,
        tests=state.exercised,
        unexercised=state.unexercised,
    )
    write_summary(state)


def summary_dict(state: RunState) -> dict[str, Any]:
    assert state.target is not None
    return {
        "verdict": overall(state.verdicts),
        "strict": state.strict,
        "target": state.target.public(),
        "counts": counts(state.verdicts),
        "families": state.families or list(FAMILIES),
        "harnessErrors": state.harness_errors,
        "interrupted": state.interrupted,
        "fuzzSeed": state.fuzz_seed,
        "limits": {
            "timeoutS": state.limits.timeout,
            "streamTimeoutS": state.limits.stream_timeout,
            "runTimeoutS": state.limits.run_timeout,
            "maxBodyBytes": state.limits.max_body_bytes,
        },
        "rules": [v.to_json() for v in state.verdicts],
    }


def write_summary(state: RunState) -> Path:
    state.report_dir.mkdir(parents=True, exist_ok=True)
    path = state.report_dir / "summary.json"
    text = json.dumps(summary_dict(state), indent=2, ensure_ascii=False)
    assert state.target is not None
    path.write_text(state.target.redact(text), encoding="utf-8")
    return path


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not state.verdicts or os.environ.get("CHATCONFORM_QUIET_SUMMARY"):
        return
    c = counts(state.verdicts)
    tr = terminalreporter
    tr.section("chatconform verdicts")
    for v in state.verdicts:
        if v.verdict != "PASS" or v.reason:
            tr.line(f"{v.verdict:5} {v.id:7} {v.reason}"[:160])
    tr.line(
        f"{overall(state.verdicts)}: {c['PASS']} PASS, {c['FAIL']} FAIL, {c['ERROR']} ERROR, "
        f"{c['WARN']} WARN, {c['SKIP']} SKIP of {len(RULES)} rules; "
        f"summary: {state.report_dir / 'summary.json'}"
    )
