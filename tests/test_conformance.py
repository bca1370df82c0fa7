"""`chatconform run --strict` against the reference: every rule PASS; against each fault, its rule FAILS.

The fault table is exact: each fault must fail its own rule and only the rules listed (a fault that
breaks one thing the way real servers do may show up in a rule that depends on it, and that cascade is
written down here, so that a check that starts firing where it should not is noticed too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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

# faults that fire on the first attempt only (a flaky server): `run` re-runs the failing test
# (--confirm 1, its default) and the rule is FLAKY, not FAIL. fault -> (the suite run, FLAKY rules)
FLAKY_FAULTS: dict[str, tuple[str, set[str]]] = {"no-terminal-once": ("streaming", {"SSE-5"})}

# faults only the fuzz suite reaches (the scenario suites send no such body): tests/test_fuzz.py
FUZZ_ONLY = {"nonarray-messages-accepted"}

# cascades that depend on timing: MSG-6 sees the reply-less streamed turn only when both of its
# concurrent posts were accepted (the reference may answer the second with 409 session_busy)
MAY_ALSO_FAIL: dict[str, set[str]] = {"history-missing-assistant": {"MSG-6"}}

VARIATIONS = ["crlf", "cr", "keepalive", "nospace", "split-data", "bom", "extra", "dribble"]


def _verdict_digest(summary: dict[str, Any]) -> list[tuple[str, str, list[tuple[str, str]]]]:
    return [
        (r["id"], r["verdict"], [(c["id"], c["verdict"]) for c in r["clauses"]])
        for r in summary["rules"]
    ]


def test_reference_passes_strict_with_the_same_verdicts_twice(tmp_path: Path) -> None:
    """`run --strict` with default options against the embedded reference: every rule PASS, every
    clause exercised; and a second run gives the same verdicts, clause by clause (the same seed)."""
    first = chatconform("run", "--strict", report_dir=tmp_path / "a")
    assert first.code == 0, first.stdout[-3000:] + first.stderr[-2000:]
    not_pass = {rid: v for rid, v in first.verdicts().items() if v != "PASS"}
    assert not_pass == {}, first.summary
    partial = {r["id"]: r["reason"] for r in first.summary["rules"] if r["reason"]}
    assert partial == {}  # nothing only partly exercised (e.g. the Node SDK check skipped)
    assert first.summary["strict"] is True
    assert first.summary["target"]["embedded"] is True
    assert (tmp_path / "a" / "junit.xml").exists()
    second = chatconform("run", "--strict", report_dir=tmp_path / "b")
    assert second.code == 0, second.stdout[-3000:] + second.stderr[-2000:]
    assert first.summary["fuzzSeed"] == second.summary["fuzzSeed"]
    assert _verdict_digest(first.summary) == _verdict_digest(second.summary)


def test_fault_table_covers_every_fault() -> None:
    from chatconform.reference.faults import FAULTS as SERVER_FAULTS

    assert set(FAULTS) | FUZZ_ONLY | set(FLAKY_FAULTS) == set(SERVER_FAULTS)
    assert not set(FAULTS) & FUZZ_ONLY
    assert not set(FLAKY_FAULTS) & (set(FAULTS) | FUZZ_ONLY)


# faults on /chat/completions: the official SDKs (OAI-5) meet them, so their runs keep both SDKs,
# as the wire variations' runs do. The other faults' runs leave the SDKs out (`--sdk none`, OAI-5
# SKIP with that reason): the SDK check is half of a scenario run's CPU (importing the openai
# package, starting Node) and reads no endpoint those faults break.
SDK_FAULTS = {"completion-no-done", "completion-event-lines", "unknown-model-404",
              "missing-model-accepted"}  # fmt: skip


def strict_run_against(server_args: tuple[str, ...], tmp_path: Path, *extra: str) -> CliRun:
    with reference(*server_args) as server:
        return chatconform(
            "run", "--strict", "--target-file", str(server.credentials), *SCENARIOS, *extra,
            "--confirm", "0",  # a fault fails on every attempt: re-runs would only cost CPU here
            report_dir=tmp_path,
        )  # fmt: skip


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_fails_its_rule(fault: str, tmp_path: Path) -> None:
    sdk = () if fault in SDK_FAULTS else ("--sdk", "none")
    run = strict_run_against(("--fault", fault), tmp_path, *sdk)
    assert run.code == 1, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.summary["verdict"] == "FAIL"
    assert FAULTS[fault] <= run.failed() <= FAULTS[fault] | MAY_ALSO_FAIL.get(fault, set())
    if sdk:
        oai5 = next(r for r in run.summary["rules"] if r["id"] == "OAI-5")
        assert oai5["verdict"] == "SKIP", oai5
        assert "--sdk none leaves the python SDK out" in oai5["reason"], oai5
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


@pytest.mark.parametrize("fault", sorted(FLAKY_FAULTS))
def test_flaky_fault_is_flaky(fault: str, tmp_path: Path) -> None:
    """A failure that does not recur when its test is re-run: FLAKY, with both observations (the
    failing attempt's finding and evidence, the attempt that passed), not gating by default, and
    named in summary.json, JUnit, Allure and summary.md."""
    suite, rules = FLAKY_FAULTS[fault]
    with reference("--fault", fault) as server:
        run = chatconform(
            "run", "--target-file", str(server.credentials), "--suite", suite, report_dir=tmp_path
        )
    assert run.code == 0, run.stdout[-3000:] + run.stderr[-2000:]
    s = run.summary
    assert s["verdict"] == "PASS"
    flaky = {rid for rid, v in run.verdicts().items() if v == "FLAKY"}
    assert flaky == rules
    assert run.failed() == set()
    assert s["counts"]["FLAKY"] == len(rules)
    for r in s["rules"]:
        if r["id"] not in rules:
            continue
        (f,) = r["findings"]  # the failing attempt's observation, with its request and response
        assert f["got"]
        assert f["evidence"]["request"]
        assert f["reproduce"].startswith("curl ")
        assert f["flaky"] == "failed on attempt 1, not on attempt 2 of 2"
        assert r["clauses"][0]["evidence"] > 0
    (test,) = s["confirm"]["tests"]
    assert test["outcome"] == "flaky"
    assert test["attempts"] == 2
    assert "FLAKY" in run.stdout
    junit = (tmp_path / "junit.xml").read_text(encoding="utf-8")
    assert 'name="chatconform-flaky"' in junit
    assert "<failure" not in junit
    results = [
        json.loads(p.read_text(encoding="utf-8"))
        for p in (tmp_path / "allure-results").glob("*-result.json")
    ]
    marked = [r for r in results if {"name": "verdict", "value": "FLAKY"} in r.get("labels", [])]
    assert len(marked) == 1
    assert marked[0]["statusDetails"]["flaky"] is True
    assert marked[0]["status"] == "passed"
    assert "FLAKY" in (tmp_path / "summary.md").read_text(encoding="utf-8")
