"""`chatconform run --strict` against the reference: every rule PASS; against each fault, its rule FAILS.

The fault table is exact: each fault must fail its own rule and only the rules listed (a fault that
breaks one thing the way real servers do may show up in a rule that depends on it, and that cascade is
written down here, so that a check that starts firing where it should not is noticed too).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chatconform.rules import FAMILIES

from harness import CliRun, chatconform, reference

# the scenario suites; the fuzz suite has its own self-tests (tests/test_fuzz.py)
SCENARIOS = [arg for family in FAMILIES for arg in ("--suite", family)]

# fault -> the rules it must FAIL under --strict (the first is the rule the fault breaks)
FAULTS: dict[str, set[str]] = {
    "no-terminal": {"SSE-5"},
    "frame-after-done": {"SSE-5"},  # a delta after done is SSE-5's, not added to MSG-5's text
    "two-terminals": {"SSE-5"},
    "wrong-content-type": {"SSE-1"},
    "event-name-mismatch": {"SSE-3"},
    "seq-gap": {"SSE-7"},
    "no-final-blank-line": {"SSE-2"},  # SSE-5: "not judged: see SSE-2" (done never dispatched)
    "buffered": {"SSE-8"},
    "history-missing-assistant": {"MSG-5"},
    "history-newest-first": {"MSG-4"},  # MSG-5/6/7 compare only a history in order
    "ended-accepts": {"SES-6"},
    "readonly-can-post": {"AUTH-2"},
    "cross-tenant-read": {"AUTH-4"},
    "publishable-accepted": {"AUTH-3"},
    "plain-json-errors": {"ERR-1"},  # codes behind it: "not judged: see ERR-1"
    "invalid-json-500": {"ERR-2", "ERR-4"},  # a true second violation: any 5xx is ERR-4 too
    "completion-no-done": {"OAI-4"},
    "completion-event-lines": {"OAI-4"},
    "unknown-model-404": {"OAI-2"},
    "long-content-500": {"MSG-1", "ERR-4"},  # ERR-2 judges the shape of a 400 only
    "nonstring-agent-500": {"ERR-4", "ERR-2"},  # a wrong type must be 400 (ERR-2), never 5xx
    "missing-errors-array": {"ERR-2"},
    "invalid-json-accepted": {"ERR-2"},
    "missing-model-accepted": {"OAI-2"},
}

# faults only the fuzz suite reaches (the scenario suites send no such body): tests/test_fuzz.py
FUZZ_ONLY = {"nonarray-messages-accepted"}

# cascades that depend on timing: MSG-6 sees the reply-less streamed turn only when both of its
# concurrent posts were accepted (the reference may answer the second with 409 session_busy)
MAY_ALSO_FAIL: dict[str, set[str]] = {"history-missing-assistant": {"MSG-6"}}

VARIATIONS = ["crlf", "cr", "keepalive", "nospace", "split-data", "bom", "extra", "dribble"]


def test_reference_passes_strict(tmp_path: Path) -> None:
    run = chatconform("run", "--strict", report_dir=tmp_path)
    assert run.code == 0, run.stdout[-3000:] + run.stderr[-2000:]
    verdicts = run.verdicts()
    not_pass = {rid: v for rid, v in verdicts.items() if v != "PASS"}
    assert not_pass == {}, run.summary
    partial = {r["id"]: r["reason"] for r in run.summary["rules"] if r["reason"]}
    assert partial == {}  # nothing only partly exercised (e.g. the Node SDK check skipped)
    assert run.summary["strict"] is True
    assert run.summary["target"]["embedded"] is True
    assert (tmp_path / "junit.xml").exists()


def test_fault_table_covers_every_fault() -> None:
    from chatconform.reference.faults import FAULTS as SERVER_FAULTS

    assert set(FAULTS) | FUZZ_ONLY == set(SERVER_FAULTS)
    assert not set(FAULTS) & FUZZ_ONLY


def strict_run_against(server_args: tuple[str, ...], tmp_path: Path) -> CliRun:
    with reference(*server_args) as server:
        return chatconform(
            "run", "--strict", "--target-file", str(server.credentials), *SCENARIOS,
            report_dir=tmp_path,
        )  # fmt: skip


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_fails_its_rule(fault: str, tmp_path: Path) -> None:
    run = strict_run_against(("--fault", fault), tmp_path)
    assert run.code == 1, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.summary["verdict"] == "FAIL"
    assert FAULTS[fault] <= run.failed() <= FAULTS[fault] | MAY_ALSO_FAIL.get(fault, set())
    failing = [r for r in run.summary["rules"] if r["verdict"] == "FAIL"]
    for r in failing:
        assert r["findings"], r
        for f in r["findings"]:
            assert f["expected"]
            assert f["got"]
            assert f["reproduce"] is None or f["reproduce"].startswith("curl ")


@pytest.mark.parametrize("variation", VARIATIONS)
def test_legitimate_variation_passes(variation: str, tmp_path: Path) -> None:
    run = strict_run_against(("--variation", variation), tmp_path)
    assert run.code == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.failed() == set()
    assert "WARN" not in run.verdicts().values()
