"""The pytest plugin: target options, fixtures, findings turned into outcomes and per-rule verdicts.

Suites under suites/ run with it (`chatconform run`, or `pytest suites/ --base-url …`). A suite test
names its rules with `@pytest.mark.rule("SSE-5", ...)` and hands the findings of the checks to the
`expect` fixture; after the test, every response it provoked also goes through the checks that hold
for all responses (ERR-1, ERR-4, ENV-1, ...). A finding graded FAIL fails the test; the rule verdicts
are written to summary.json in the report directory, with the agent calls and tokens the run spent.

Each test's contribution (findings, evidence, skip reasons) is a `TestRecord`, applied to the run's
state where the test ran and, under pytest-xdist (`chatconform run --concurrency N`, `pytest -n N`),
carried to the controller in the report's user_properties. Workers share the agent-call ledger and a
gate that runs the timing-sensitive tests (EXCLUSIVE_RULES) with nothing else in flight.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chatconform import interrupt
from chatconform.agentcalls import (
    DEFAULT_MAX_AGENT_CALLS,
    FIRST,
    LATE,
    OTHER,
    AgentCalls,
    bill_line,
    parse_cap,
)
from chatconform.budget import Budget
from chatconform.checks.errors import every_response
from chatconform.checks.unended import unended
from chatconform.client import Client
from chatconform.embedded import EmbeddedError, EmbeddedServer, reference_args_from_env
from chatconform.expectations import EntryResult, Expectation, ExpectationsError
from chatconform.fuzz.seed import resolve_seed
from chatconform.gate import Gate
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
    flaky_gates,
    grade_rules,
    overall,
)

#: Timing-sensitive rules (flush timing, concurrent posts, a dropped stream, a burst that must
#: outrun a rate limit): a test aiming at one runs with nothing else in flight (--concurrency).
EXCLUSIVE_RULES = frozenset({"SSE-8", "MSG-6", "MSG-7", "ERR-3"})
RECORD_KEY = "chatconform-record"  # a TestRecord in a report's user_properties
#: Suites that spend the agent calls the scenario suites left: they run after them; under xdist
#: their agent calls wait until every scenario test finished and, under a cap, their tests take
#: turns in collection order (so the calls left are shared out the same way at any concurrency).
LAST_FAMILIES = frozenset({"fuzz"})


class Fatal(Exception):
    """Raised by `expect.check(..., fatal=True)`: the findings are recorded, the test cannot go on."""


class NotSent(Exception):
    """Raised before a test starts when the run's budget refuses every request (deadline passed,
    target stopped answering): its rules are ERROR with the reason, at no cost in time."""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    state = item.config.stash.get(STATE, None)
    if state is None or state.budget is None or not _declared(item):
        return
    why = state.budget.refusal()
    if why is not None:
        raise NotSent(why)


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
    expectations: list[Expectation] = field(default_factory=list)  # --expectations FILE
    expectations_file: str | None = None
    strict_expectations: bool = False
    expectation_results: list[EntryResult] = field(default_factory=list)
    agent_calls: AgentCalls | None = None
    shared_dir: Path | None = None  # the ledger and the gate, shared with xdist workers
    owns_shared_dir: bool = False
    target_info: dict[str, Any] | None = None  # a worker's target, on an xdist controller
    tests_recorded: int = 0
    confirm: int = 0  # --confirm N: re-runs of a test that failed (chatconform.confirm)
    flaky_policy: str | None = None  # --flaky fail|warn (None: FLAKY gates only under --strict)
    confirmations: list[dict[str, Any]] = field(default_factory=list)  # what the re-runs showed

    @property
    def flaky_fails(self) -> bool:
        return flaky_gates(self.strict, self.flaky_policy)

    def apply(self, rec: TestRecord) -> None:
        """Add one test phase's contribution to the run's verdicts."""
        self.tests_recorded += 1
        self.findings.extend(rec.findings)
        self.evidence.update(rec.evidence)
        for key, why in rec.unexercised.items():
            self.unexercised.setdefault(key, why)
        for rid, why in rec.skipped.items():
            self.skipped.setdefault(rid, why)
        for rid in rec.exercised:
            self.exercised.setdefault(rid, []).append(rec.test)
        self.harness_errors.extend(rec.harness_errors)
        self.confirmations.extend(rec.confirmations)
        if rec.fuzz_seed is not None:
            self.fuzz_seed = rec.fuzz_seed


@dataclass
class TestRecord:
    """What one test phase contributed to the verdicts (see RunState.apply)."""

    __test__ = False  # not a pytest test class

    test: str
    findings: list[Finding] = field(default_factory=list)
    evidence: Counter[ClauseKey] = field(default_factory=Counter)
    unexercised: dict[ClauseKey, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    exercised: list[str] = field(default_factory=list)  # rules it examined
    harness_errors: list[str] = field(default_factory=list)
    fuzz_seed: int | None = None
    target: dict[str, Any] | None = None
    confirmations: list[dict[str, Any]] = field(default_factory=list)  # chatconform.confirm

    def to_json(self) -> str:
        return json.dumps(
            {
                "test": self.test,
                "findings": [_finding_json(f) for f in self.findings],
                "evidence": [[r, c, n] for (r, c), n in self.evidence.items()],
                "unexercised": [[r, c, why] for (r, c), why in self.unexercised.items()],
                "skipped": self.skipped,
                "exercised": self.exercised,
                "harnessErrors": self.harness_errors,
                "fuzzSeed": self.fuzz_seed,
                "target": self.target,
                "confirmations": self.confirmations,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> TestRecord:
        d = json.loads(text)
        return cls(
            test=d["test"],
            findings=[Finding(**f) for f in d["findings"]],
            evidence=Counter({(r, c): n for r, c, n in d["evidence"]}),
            unexercised={(r, c): why for r, c, why in d["unexercised"]},
            skipped=d["skipped"],
            exercised=d["exercised"],
            harness_errors=d["harnessErrors"],
            fuzz_seed=d["fuzzSeed"],
            target=d["target"],
            confirmations=d.get("confirmations") or [],
        )


def _finding_json(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "expected": f.expected,
        "got": f.got,
        "level": f.level,
        "reproduce": f.reproduce,
        "evidence": f.evidence,
        "test": f.test,
        "kind": f.kind,
        "clause": f.clause,
        "flaky": f.flaky,
    }


STATE = pytest.StashKey[RunState]()
_STATES: list[RunState] = []  # pytest_keyboard_interrupt is not given the config
EXPECT = pytest.StashKey["Expect"]()
LOG = pytest.StashKey[list[Exchange]]()
REFUSED = pytest.StashKey[int]()  # this process's cap refusals when the test started
LATE_TURN = pytest.StashKey[int]()  # a late suite's test: its place among them
ATTEMPT = pytest.StashKey[list["TestRecord"]]()  # a test that may be re-run: its records, held


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
    group.addoption("--fuzz-seed", dest="cc_fuzz_seed", default=None)  # an integer or "random"
    group.addoption("--fuzz-max-examples", dest="cc_fuzz_max_examples", type=int, default=None)
    group.addoption(
        "--fuzz-concurrency", dest="cc_fuzz_concurrency", type=int, default=None, metavar="N",
        help="fuzz cases in flight at once (default: the pytest-xdist workers, else 1)",
    )  # fmt: skip
    group.addoption("--embedded-target", dest="cc_embedded", action="store_true", default=False)
    group.addoption("--expectations", dest="cc_expectations", default=None,
                    help="known-failure expectations file (YAML or TOML)")  # fmt: skip
    group.addoption("--strict-expectations", dest="cc_strict_expectations", action="store_true",
                    default=False, help="an expected failure that passes (XPASS) fails the run")  # fmt: skip
    group.addoption(
        "--confirm", dest="cc_confirm", type=int, default=0, metavar="N",
        help="re-run a test that failed on the target's findings up to N more times; a failure "
        "that does not recur is FLAKY (default 0 here; `chatconform run` defaults to 1)",
    )  # fmt: skip
    group.addoption(
        "--flaky", dest="cc_flaky", choices=("fail", "warn"), default=None,
        help="whether a FLAKY rule fails the run (default: only under --strict-contract)",
    )  # fmt: skip
    group.addoption(
        "--max-agent-calls", dest="cc_max_agent_calls", default=None, metavar="N",
        help="requests that may invoke the target's agent beyond N are not sent; the rules left "
        f"unexercised are SKIP ('none': no cap; default {DEFAULT_MAX_AGENT_CALLS})",
    )  # fmt: skip
    group.addoption(
        "--sdk", dest="cc_sdk", default="python,node", metavar="LANGS",
        help="the official SDKs OAI-5 runs: python, node, both comma-separated, or none",
    )  # fmt: skip


def sdk_languages(config: pytest.Config) -> tuple[str, ...]:
    """The SDKs OAI-5 runs (--sdk), a bad value a pytest usage error."""
    from chatconform.sdk import parse_languages

    try:
        return parse_languages(config.getoption("cc_sdk"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def agent_call_cap(value: str | int | None) -> int | None:
    """The --max-agent-calls value (agentcalls.parse_cap), a bad one a pytest usage error."""
    try:
        return parse_cap(value)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rule(*ids): the contract rule ids a suite test checks")
    config.addinivalue_line("markers", "family(name): the suite family of a test")
    config.addinivalue_line(
        "markers",
        "replies(n): the agent replies the test waits for one after another (default 1); under "
        "--concurrency the tests with more start first",
    )
    config.addinivalue_line(
        "markers",
        "per_case: each request of the test is judged on its own (a fuzz case): a request the "
        "agent-call cap kept back takes nothing from what the others showed",
    )
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
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "cc_shared_dir" in workerinput:
        state.shared_dir = Path(workerinput["cc_shared_dir"])
        if workerinput.get("cc_fuzz_seed") is not None:
            config.option.cc_fuzz_seed = workerinput["cc_fuzz_seed"]
    else:
        state.shared_dir = Path(tempfile.mkdtemp(prefix="chatconform-run-"))
        state.owns_shared_dir = True
    sdk_languages(config)  # a bad --sdk is a usage error before any test runs
    state.agent_calls = AgentCalls(
        agent_call_cap(config.getoption("cc_max_agent_calls")),
        state.shared_dir / "agent-calls.json",
    )
    if config.getoption("cc_expectations"):
        from chatconform import expectations

        try:
            state.expectations = expectations.load(config.getoption("cc_expectations"))
        except ExpectationsError as exc:
            raise pytest.UsageError(str(exc)) from None
        state.expectations_file = str(config.getoption("cc_expectations"))
    state.strict_expectations = bool(config.getoption("cc_strict_expectations"))
    state.confirm = int(config.getoption("cc_confirm") or 0)
    if state.confirm < 0:
        raise pytest.UsageError("--confirm must be 0 (no re-runs) or more")
    state.flaky_policy = config.getoption("cc_flaky")
    if state.confirm > 0:
        from chatconform.confirm import Confirmer

        config.pluginmanager.register(Confirmer(state, state.confirm), "chatconform-confirm")
    # allure (chatconform.report.allure_results): with --alluredir, label/attach/grade each result
    from chatconform.report.allure_results import install as install_allure

    install_allure(config, state)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist, on the controller, with `--dist loadgroup` (as `chatconform run` asks): one
    test at a time to each worker as it frees up, in the plugin's order, and the late suites'
    tests (LAST_FAMILIES) together in one worker: they take turns anyway, and that worker builds
    the one fuzzer. (xdist's own loadgroup reads `xdist_group` markers, which it cannot apply under
    pytest 9; this groups by the test file instead, all the controller knows of a test.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from chatconform.schedule import late_group_scheduler

    return late_group_scheduler(config, log, LAST_FAMILIES)


@pytest.hookimpl(trylast=True)  # after -k/-m deselected: the order and counts of what will run
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """A marker naming a rule the registry does not know is an error at collection, not a no-op.
    When a collected test names a rule, the run needs a target: resolve it (or start the reference).

    Order: the scenario suites before LAST_FAMILIES (they spend the agent calls first); under xdist,
    the timing-sensitive tests first of all, so that they run alone while nothing else has started
    instead of draining the workers once each."""
    suite_tests = False
    for item in items:
        for rid in _declared(item):
            suite_tests = True
            try:
                rule(rid)
            except UnknownRule as exc:
                raise pytest.UsageError(f"{item.nodeid}: {exc}") from None
    if suite_tests:
        worker = getattr(config, "workerinput", None) is not None

        def rank(item: pytest.Item) -> int:
            if _declared(item) and _family(item) in LAST_FAMILIES:
                return 2
            return 0 if worker and EXCLUSIVE_RULES & set(_declared(item)) else 1

        def order(item: pytest.Item) -> tuple[int, int]:
            # under xdist, the tests that wait for several agent replies in turn start first, so
            # that the shortest ones fill the end (longest first: the last worker ends soonest)
            return rank(item), -_replies(item) if worker and rank(item) == 1 else 0

        items.sort(key=order)  # stable: otherwise in collection order
        for k, item in enumerate(i for i in items if rank(i) == 2):
            item.stash[LATE_TURN] = k
        state = config.stash[STATE]
        if state.agent_calls is not None:
            state.agent_calls.first_tests = sum(1 for i in items if rank(i) < 2 and _declared(i))
        _start_target(config)  # an xdist worker resolves it too (from the same options)


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
    health = state.shared_dir / "target-health.json" if state.shared_dir is not None else None
    state.budget = Budget(state.limits, state.agent_calls, health)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, on the controller: the workers share its ledger, its gate and one fuzz seed."""
    state = node.config.stash[STATE]
    assert state.shared_dir is not None
    node.workerinput["cc_shared_dir"] = str(state.shared_dir)
    seed = node.config.getoption("cc_fuzz_seed")
    if seed is None or str(seed).strip().lower() == "random":
        # one seed for every worker (the fixed default, FLOWYTE_SEED's, or one drawn once here)
        with contextlib.suppress(ValueError):  # a bad FLOWYTE_SEED: the fuzz suite says so (exit 2)
            seed = node.config.option.cc_fuzz_seed = str(resolve_seed(seed))
    node.workerinput["cc_fuzz_seed"] = seed


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
    if state is not None and state.owns_shared_dir and state.shared_dir is not None:
        shutil.rmtree(state.shared_dir, ignore_errors=True)
        state.owns_shared_dir = False


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
def fuzz_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """--fuzz-seed (text), --fuzz-max-examples (None: the fuzz suite's defaults) and
    --fuzz-concurrency (default: as many cases in flight as the run has xdist workers)."""
    workers = getattr(request.config, "workerinput", {}).get("workercount", 1)
    return {
        "seed": request.config.getoption("cc_fuzz_seed"),
        "max_examples": request.config.getoption("cc_fuzz_max_examples"),
        "concurrency": max(1, request.config.getoption("cc_fuzz_concurrency") or int(workers)),
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


def _replies(item: pytest.Item) -> int:
    """The agent replies a test waits for one after another (its `replies` marker; default 1)."""
    mark = item.get_closest_marker("replies")
    return int(mark.args[0]) if mark is not None and mark.args else 1


def _family(item: pytest.Item) -> str:
    """The suite a test belongs to: its `family` marker, else its file's name (test_<family>.py)."""
    mark = item.get_closest_marker("family")
    if mark is not None and mark.args:
        return str(mark.args[0])
    return Path(str(item.path)).stem.removeprefix("test_")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Charge the test's agent calls to its suite; under xdist, pass the gate (EXCLUSIVE_RULES)."""
    state = item.config.stash.get(STATE, None)
    declared = _declared(item)
    if state is None or not declared:
        yield
        return
    ledger = state.agent_calls
    family = _family(item)
    worker = getattr(item.config, "workerinput", None) is not None
    gate: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if worker and state.shared_dir is not None:
        g = Gate(state.shared_dir)
        gate = g.exclusive() if EXCLUSIVE_RULES & set(declared) else g.shared()
    late = family in LAST_FAMILIES
    if worker and late and ledger is not None and ledger.cap is not None:
        # what the scenario suites left is spent in one order, whatever the workers: the late
        # tests take their turns in collection order, so a seed replays the same fuzz cases
        deadline = state.budget.deadline if state.budget is not None else 0.0
        ledger.wait_for(LATE, item.stash.get(LATE_TURN, 0), deadline)
    if ledger is not None:
        ledger.suite = family
        ledger.late = late
        item.stash[REFUSED] = ledger.refused_here
    try:
        with gate:
            yield
    finally:
        if ledger is not None:
            ledger.suite = OTHER
            ledger.late = False
            ledger.done(LATE if late else FIRST)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    state = item.config.stash.get(STATE, None)
    declared = _declared(item)
    if state is None or not declared or call.when == "teardown":
        return
    rec = _record(item, call, report, state, declared)
    if rec is None:
        return
    held = item.stash.get(ATTEMPT, None)
    if held is not None:  # an attempt of a test that may be re-run: chatconform.confirm decides
        held.append(rec)
        return
    carry_record(item, rec, report)


def carry_record(item: pytest.Item, rec: TestRecord, report: pytest.TestReport) -> None:
    """Apply a test's record to the run here; on an xdist worker, also send it to the controller
    in the report's user_properties (see pytest_runtest_logreport)."""
    state = item.config.stash[STATE]
    state.apply(rec)
    if getattr(item.config, "workerinput", None) is not None:  # for the controller
        rec.target = state.target.public() if state.target is not None else None
        rec.fuzz_seed = state.fuzz_seed  # set in this worker by the fuzz suite, if it ran here
        text = rec.to_json()
        report.user_properties.append(
            (RECORD_KEY, state.target.redact(text) if state.target is not None else text)
        )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """On an xdist controller: apply the record a worker made of the test (see makereport), and
    take it out of the report before JUnit and others read its properties."""
    if getattr(report, "node", None) is None:
        return  # made in this process: already applied
    records = [value for name, value in report.user_properties if name == RECORD_KEY]
    if not records:
        return
    report.user_properties = [p for p in report.user_properties if p[0] != RECORD_KEY]
    state = report.node.config.stash.get(STATE, None)
    if state is None:
        return
    for value in records:
        rec = TestRecord.from_json(str(value))
        if state.target is None and rec.target is not None:
            state.target_info = rec.target
        state.apply(rec)


def _limited(item: pytest.Item, state: RunState) -> str | None:
    """The limit the user chose that kept a request of this test unsent (None: no such request)."""
    ledger = state.agent_calls
    if ledger is None:
        return None
    return ledger.limit_text if ledger.refused_here > item.stash.get(REFUSED, 0) else None


def _record(
    item: pytest.Item,
    call: pytest.CallInfo[None],
    report: pytest.TestReport,
    state: RunState,
    declared: list[str],
) -> TestRecord | None:
    """What this test phase contributes to the verdicts; grades the pytest report from it."""
    rec = TestRecord(item.nodeid)
    if report.skipped:
        reason = _skip_reason(report)
        expect = item.stash.get(EXPECT, None)
        if expect is not None:  # the clause it could not exercise, said before skipping
            rec.unexercised.update(expect.outcome.unexercised)
        for rid in declared:
            rec.skipped.setdefault(rid, reason)
        return rec
    if call.when == "setup" and report.passed:
        return None
    target = state.target
    expect = item.stash.get(EXPECT, Expect())
    log = item.stash.get(LOG, [])
    found = Outcome()
    found.extend(expect.outcome)
    every = Outcome()
    for ex in log:
        every.extend(every_response(ex))
        every.extend(_unended(ex, found))
    limit = _limited(item, state)
    per_case = item.get_closest_marker("per_case") is not None
    if limit is not None and per_case:
        found.extend(every)
        found = _cases_within_limit(found, declared, limit)
    elif limit is not None:
        found = _within_limit(found, every, log, declared, limit)
    else:
        found.extend(every)
        if call.excinfo is not None and not call.excinfo.errisinstance(Fatal):
            found.extend(_error_findings(call, declared, log, found, rec))
    for f in found:
        f.test = item.nodeid
        if f.kind == "target" and f.exchange is not None and f.exchange.unjudged:
            f.kind = "budget"  # a request the run did not send (or cut short) proves nothing
        if f.exchange is not None and target is not None:
            f.reproduce = f.exchange.curl(target)
            f.evidence = f.exchange.evidence(target)
        elif f.exchange is None and log and target is not None:
            f.reproduce = log[-1].curl(target)
        f.exchange = None
    rec.findings = list(found)
    rec.evidence = Counter(found.examined)
    rec.unexercised = dict(found.unexercised)
    completed = call.when == "call" and call.excinfo is None
    judged_any = bool(set(declared) & (found.rules_examined() | {f.rule for f in found}))
    if limit is not None:
        judged = found.rules_examined() | {f.rule for f in found}
        for rid in declared:  # what it kept judged is in the findings; the rest waits on the cap
            if not (per_case and rid in judged):
                rec.skipped.setdefault(rid, limit)
    elif not completed:
        # a test stopped early proves nothing about the rules it did not get to
        cause = next((f for f in found if not f.is_note), None)
        why = f"{cause.rule}: {cause.message}" if cause else "an error"
        judged = {f.rule for f in found} | found.rules_examined()
        for rid in set(declared) - judged:
            rec.skipped.setdefault(rid, f"not reached: {item.name} stopped on {why}"[:300])
    rec.exercised = sorted(found.rules_examined() | {f.rule for f in found if not f.is_note})
    graded = [f for f in found if not f.is_note]  # a note (level I) never fails or warns a test
    failing = [f for f in graded if f.grade(state.strict) == "FAIL"]
    warnings = [f for f in graded if f.grade(state.strict) == "WARN"]
    for w in warnings:
        report.user_properties.append(("chatconform-warn", f"{w.rule}: {w.message}"))
    if failing:
        report.outcome = "failed"
        text = "\n\n".join(f.render(state.strict) for f in failing)
        if target is not None:
            text = target.redact(text)
        report.longrepr = text
        _mark_expected(report, state, failing)
    elif limit is not None and per_case and judged_any and completed:
        report.outcome = "passed"  # what it sent passed; the clauses the cap kept back are SKIP
    elif limit is not None:
        report.outcome = "skipped"  # neither passed nor failed: it could not do what it aims at
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {limit}")
    elif (
        call.when == "call"
        and report.failed
        and call.excinfo is not None
        and call.excinfo.errisinstance(Fatal)
    ):
        report.outcome = "passed"  # only WARN-graded findings stopped it
    if call.excinfo is not None and call.excinfo.errisinstance(NotSent):
        report.longrepr = f"ERROR, not judged: {call.excinfo.value}"  # no traceback for this
    return rec


def _unended(ex: Exchange, found: Outcome) -> Outcome:
    """checks.unended on one exchange of the test, unless the test's own checks already found the
    rule broken on it (one finding per broken stream)."""
    out = unended(ex)
    rules = {f.rule for f in out}
    if any(f.exchange is ex and f.rule in rules and not f.is_note for f in found):
        return Outcome()
    return out


def _within_limit(
    found: Outcome, every: Outcome, log: list[Exchange], declared: list[str], limit: str
) -> Outcome:
    """A test the agent-call cap cut short. What the target answered before the first refused
    request stays judged (findings on those exchanges, and the every-response checks of any answer);
    its other findings, and the evidence of the rules it aims at (its scenario was not played to
    the end), become 'not exercised' naming the limit: SKIP, never PASS, never FAIL or ERROR."""
    first = next((i for i, ex in enumerate(log) if ex.limit), len(log))
    before = {id(ex) for ex in log[:first]}
    mine = {id(ex) for ex in log}
    kept = Outcome()
    for source, per_response in ((found, False), (every, True)):
        for f in source:
            ex = f.exchange
            answered = ex is not None and not ex.not_sent
            # an exchange outside the test's log: a session-wide client's (the fuzz suite's)
            if answered and (per_response or id(ex) in before or id(ex) not in mine):
                kept.append(f)
            else:
                kept.unexercised.setdefault((f.rule, f.clause_id or _any_clause(f.rule)), limit)
        for key, n in source.examined.items():
            if key[0] not in declared:
                kept.examined[key] += n
        for key, why in source.unexercised.items():
            kept.unexercised.setdefault(key, why)
    for rid in declared:
        for cid, _ in RULES[rid].clauses:
            kept.unexercised.setdefault((rid, cid), limit)
    return kept


def _cases_within_limit(found: Outcome, declared: list[str], limit: str) -> Outcome:
    """A test of independent cases (`per_case`, the fuzz suite) that the agent-call cap kept from
    sending some: every case that was sent stays judged (its findings and its evidence); only the
    clauses of the rules it aims at that nothing examined are 'not exercised' naming the limit (a
    clause with its own reason keeps it)."""
    failed = {(f.rule, f.clause_id or _any_clause(f.rule)) for f in found if not f.is_note}
    for rid in declared:
        for cid, _ in RULES[rid].clauses:
            if (rid, cid) not in found.examined and (rid, cid) not in failed:
                found.unexercised.setdefault((rid, cid), limit)
    return found


def _any_clause(rule_id: str) -> str:
    return RULES[rule_id].clauses[0][0]


def _mark_expected(report: pytest.TestReport, state: RunState, failing: list[Finding]) -> None:
    """A test whose every failing finding an active expectation covers shows as xfailed (JUnit
    `<skipped type="pytest.xfail">`); the rule's XFAIL itself is decided at the end of the run."""
    if not state.expectations:
        return
    from chatconform.expectations import expected_test_failure, today_utc

    entry = expected_test_failure(failing, state.expectations, today_utc())
    if entry is not None:
        report.outcome = "skipped"
        report.wasxfail = f"XFAIL {entry.name}"  # type: ignore[attr-defined]


def _skip_reason(report: pytest.TestReport) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2]).removeprefix("Skipped: ")
    return str(lr)


def _error_findings(
    call: pytest.CallInfo[None],
    declared: list[str],
    log: list[Exchange],
    found: Outcome,
    rec: TestRecord,
) -> list[Finding]:
    """An exception in a test. The target's doing when its last request failed in transport (it
    did not answer); an ERROR of every rule the test aimed at when the run did not send the request
    (budget) or when the harness itself broke: those prove nothing about the target."""
    assert call.excinfo is not None
    if call.excinfo.errisinstance(NotSent):
        why = f"test not started: {call.excinfo.value}"
        return [
            Finding(rid, "the harness to judge this rule", why[:500], kind="budget")
            for rid in dict.fromkeys(declared)
        ]
    last = log[-1] if log else None
    if last is not None and last.error and not last.unjudged:
        if any(f.exchange is last or f.rule in declared for f in found if not f.is_note):
            return []  # the checks already charged the failed request to the rule it broke
        got = f"{last.method} {last.url}: {last.error}"
        return [Finding(declared[0], "the test to complete", got[:500], exchange=last)]
    if last is not None and last.unjudged:
        got, kind = f"{last.method} {last.url}: {last.error}", "budget"
    else:
        exc = call.excinfo.value
        got, kind = f"harness error {type(exc).__name__}: {exc}", "harness"
        rec.harness_errors.append(f"{rec.test}: {got}")
    return [
        Finding(rid, "the harness to judge this rule", got[:500], kind=kind)  # type: ignore[arg-type]
        for rid in dict.fromkeys(declared)
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None or state.tests_recorded == 0:
        return  # no suite test ran (e.g. the self-tests): nothing to judge
    if state.target is None and state.target_info is None:
        return
    if getattr(session.config, "workerinput", None) is not None:
        return  # the controller judges, from the records the workers sent
    if interrupt.requested():  # a Ctrl-C some library swallowed is still the user's Ctrl-C
        state.interrupted = True
    state.verdicts = grade_rules(
        state.findings,
        state.evidence,
        state.skipped,
        state.strict,
        state.families,
        tests=state.exercised,
        unexercised=state.unexercised,
    )
    if state.expectations:
        from chatconform.expectations import apply, today_utc

        state.verdicts, state.expectation_results = apply(
            state.verdicts, state.expectations, today_utc(), state.strict
        )
    write_summary(state)
    if overall(state.verdicts, state.strict_expectations, state.flaky_fails) == "FAIL" and (
        session.exitstatus == pytest.ExitCode.OK
    ):
        # every test passed, yet the run fails: an XPASS under --strict-expectations, a FLAKY rule
        # under --strict or --flaky=fail (`chatconform run` reads the verdict from summary.json)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def summary_dict(state: RunState) -> dict[str, Any]:
    target = state.target.public() if state.target is not None else state.target_info
    assert target is not None
    return {
        "verdict": overall(state.verdicts, state.strict_expectations, state.flaky_fails),
        "strict": state.strict,
        "target": target,
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
        "agent": state.agent_calls.to_json() if state.agent_calls is not None else None,
        "rules": [v.to_json() for v in state.verdicts],
        **({"expectations": _expectations_json(state)} if state.expectations_file else {}),
        "confirm": {
            "reruns": state.confirm,
            "flaky": state.flaky_policy or ("fail" if state.strict else "warn"),
            "flakyGates": state.flaky_fails,
            "tests": sorted(state.confirmations, key=lambda c: str(c.get("test"))),
        },
    }


def _expectations_json(state: RunState) -> dict[str, Any]:
    from chatconform.expectations import summary_json

    return summary_json(
        state.expectation_results, state.expectations_file, state.strict_expectations
    )


def write_summary(state: RunState) -> Path:
    state.report_dir.mkdir(parents=True, exist_ok=True)
    path = state.report_dir / "summary.json"
    text = json.dumps(summary_dict(state), indent=2, ensure_ascii=False)
    if state.target is not None:
        text = state.target.redact(text)
    path.write_text(text, encoding="utf-8")
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
        f"{overall(state.verdicts, state.strict_expectations, state.flaky_fails)}: "
        f"{c['PASS']} PASS, {c['FAIL']} FAIL, {c['ERROR']} ERROR, {c['FLAKY']} FLAKY, "
        f"{c['XFAIL']} XFAIL, {c['XPASS']} XPASS, "
        f"{c['WARN']} WARN, {c['SKIP']} SKIP of {len(RULES)} rules; "
        f"summary: {state.report_dir / 'summary.json'}"
    )
    for conf in state.confirmations:
        tr.line(f"re-run {conf['outcome']}: {conf['test']}: {conf['detail']}"[:200])
    if state.agent_calls is not None:
        tr.line(bill_line(state.agent_calls.to_json()))
