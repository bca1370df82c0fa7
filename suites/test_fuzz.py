"""Schema-driven fuzzing (Schemathesis over specs/chat-api.yaml): what the scenario suites did not think of.

Stateless: all six operations, examples + coverage + fuzzing phases, positive and negative, with
Schemathesis's built-in checks configured from the contract and chatconform's SSE-aware checks.
Stateful: sequences through the spec's links with a model of the sessions; tenancy: the same
sequences replayed with the other organization's key.

The seed is fixed by default (chatconform.fuzz.seed.DEFAULT_SEED), so a target gets the same cases
and the same verdicts run after run; `--seed N` (`--fuzz-seed N`) replays a run, `--seed random`
(or FLOWYTE_SEED=random) explores. The seed is printed at the start and written to summary.json, the
JUnit properties and fuzz.json; `--max-examples N` (`--fuzz-max-examples`) raises the budget.
Schemathesis's own JUnit report goes to `<report dir>/schemathesis-junit.xml`.

The markers say what each test aims at; a rule is exercised only by what the fuzzer actually sent
and checked (its evidence), so a run that sent nothing passes nothing.

Against a slow agent the agent-invoking cases are sent up to `--concurrency` at once (`--fuzz-
concurrency N` under pytest; fuzz/window.py), and checked in the order they were generated, so a
seed gives the same cases and verdicts at any concurrency. Under `--max-agent-calls` the stateless
run spends what the scenario suites left but a reserve for the stateful runs (runner.py's
`stateless_share`); a case kept back for the cap takes nothing from the cases that were sent.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from chatconform.budget import Budget
from chatconform.fuzz import resolve_seed
from chatconform.plugin import STATE, Expect
from chatconform.target import Target

if TYPE_CHECKING:  # Schemathesis is imported where a fuzz test runs, not in every xdist worker
    from chatconform.fuzz import Fuzzer

# per_case: each fuzz case is judged on its own, so a case the agent-call cap kept back takes
# nothing from what the cases that were sent showed (the plugin keeps their evidence)
pytestmark = [pytest.mark.family("fuzz"), pytest.mark.per_case]

STATELESS_RULES = (
    "ERR-1", "ERR-2", "ERR-4", "ENV-1", "AUTH-1", "SES-1", "SES-4", "SES-5", "SES-7", "MSG-1",
    "MSG-2", "MSG-3", "MSG-4", "SSE-1", "SSE-2", "SSE-3", "SSE-5", "SSE-6", "SSE-7", "OAI-1",
    "OAI-2", "OAI-3", "OAI-4", "OAI-7",
)  # fmt: skip
STATEFUL_RULES = ("SES-4", "SES-5", "SES-6", "MSG-5")
TENANCY_RULES = ("AUTH-4", "SES-3")


@pytest.fixture(scope="session")
def fuzzer(
    request: pytest.FixtureRequest,
    target: Target,
    fuzz_options: dict[str, Any],
    report_dir: Path,
    record_testsuite_property: Callable[[str, object], None],
    budget: Budget | None,
) -> Iterator[Fuzzer]:
    from chatconform.fuzz import DEFAULT_MAX_EXAMPLES, Fuzzer, FuzzSettings

    try:
        seed = resolve_seed(fuzz_options["seed"])
    except ValueError as exc:
        pytest.exit(f"chatconform: {exc}", returncode=2)
    settings = FuzzSettings(
        seed=seed,
        max_examples=fuzz_options["max_examples"] or DEFAULT_MAX_EXAMPLES,
        concurrency=fuzz_options["concurrency"],
    )
    line = (
        f"chatconform fuzz: seed {settings.seed}, max examples {settings.max_examples}, "
        f"{settings.concurrency} in flight (replay with --seed {settings.seed})"
    )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)
    record_testsuite_property("fuzz_seed", settings.seed)
    request.config.stash[STATE].fuzz_seed = settings.seed
    record_testsuite_property("fuzz_max_examples", settings.max_examples)
    fz = Fuzzer(target, settings, budget)
    try:
        yield fz
    finally:
        fz.close()
        report_dir.mkdir(parents=True, exist_ok=True)
        # under pytest-xdist the fuzz tests may run in several workers, each with its own fuzzer:
        # each writes its own JUnit file and adds its operations to the one fuzz.json
        worker = getattr(request.config, "workerinput", {}).get("workerid")
        junit = f"schemathesis-junit-{worker}.xml" if worker else "schemathesis-junit.xml"
        fz.write_junit(report_dir / junit)
        run = str(request.config.stash[STATE].shared_dir)  # the same in every worker of a run
        add_to_fuzz_json(report_dir / "fuzz.json", fz.summary(), run)


def add_to_fuzz_json(path: Path, summary: dict[str, Any], run: str) -> None:
    """Merge one fuzzer's summary into this run's fuzz.json (locked: workers end at once); a file
    left by another run in the same directory is replaced."""
    with path.open("a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        text = fh.read()
        merged: dict[str, Any] = json.loads(text) if text.strip() else {}
        if merged.get("run") != run:
            merged = {}
        operations = {**merged.get("operations", {}), **summary["operations"]}
        merged.update(summary)
        merged["operations"] = operations
        merged["run"] = run
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(merged, indent=2))


@pytest.mark.rule(*STATELESS_RULES)
def test_stateless(fuzzer: Fuzzer, expect: Expect) -> None:
    """Every operation, positive and negative, against the built-in and the SSE-aware checks, and
    the contract's rejection list on what was sent."""
    fuzzer.run_stateless()
    expect.check(fuzzer.findings(STATELESS_RULES))


@pytest.mark.rule(*STATEFUL_RULES)
def test_stateful(fuzzer: Fuzzer, expect: Expect) -> None:
    """Link-driven sequences: created -> gettable, history = what the posts returned, ended refuses."""
    from chatconform.fuzz import Stateful

    Stateful(fuzzer).run()
    expect.check(fuzzer.findings(STATEFUL_RULES))


@pytest.mark.rule(*TENANCY_RULES)
def test_stateful_tenancy(fuzzer: Fuzzer, expect: Expect, target: Target) -> None:
    """The same sequences with the other organization's key swapped in never succeed."""
    from chatconform.fuzz import Stateful

    if not target.other_tenant_key:
        pytest.skip("not configured: give --other-tenant-key or FLOWYTE_OTHER_TENANT_KEY")
    Stateful(fuzzer, tenancy=True, label="Stateful tests (tenancy)").run()
    expect.check(fuzzer.findings(TENANCY_RULES))
