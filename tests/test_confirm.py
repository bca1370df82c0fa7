"""`--confirm N` and FLAKY (issue 11.3), `pytest suites/ --strict-expectations` (11.2).

Grading: a failure that did not recur on a re-run is FLAKY, gating only under --strict or as
`--flaky=fail|warn` says. The re-run protocol, through the plugin, on a suite whose tests fail on
their first attempt only, on every attempt, or break in the harness (no target needed: no request is
sent). Against the reference: a fault that recurs stays FAIL with a note that it recurred (the fault
that fires once is in tests/test_conformance.py's FLAKY_FAULTS). The reports: summary.md/html, the
matrix and Allure show FLAKY (and Allure XFAIL / XPASS) distinctly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from chatconform.agentcalls import AgentCalls
from chatconform.budget import Budget
from chatconform.confirm import Attempt, Confirmer, merge
from chatconform.plugin import TestRecord
from chatconform.target import Limits
from chatconform.verdicts import (
    Finding,
    Outcome,
    counts,
    flaky_gates,
    grade_rules,
    overall,
)
from fake_items import FakeItem, FakeReport

from harness import chatconform, reference

ROOT = Path(__file__).resolve().parents[1]


# -- grading ----------------------------------------------------------------------------------
def _flaky(rule: str = "SSE-5") -> Finding:
    return Finding(
        rule, "one terminal frame", "none", flaky="failed on attempt 1, not on attempt 2"
    )


def _grade(findings: list[Finding], strict: bool, rule: str = "SSE-5") -> str:
    evidence = {(rule, "all"): 1}
    verdicts = grade_rules(findings, evidence, {}, strict)
    return next(v.verdict for v in verdicts if v.id == rule)


def test_flaky_grading_strict_and_not() -> None:
    d = _flaky("SSE-5")  # a documented rule
    assert d.grade(strict=False) == "FLAKY"
    assert d.grade(strict=True) == "FLAKY"
    assert "did not recur: failed on attempt 1, not on attempt 2" in d.message
    c = _flaky("SSE-7")  # a contract decision: WARN outside --strict, whatever a re-run showed
    assert c.grade(strict=False) == "WARN"
    assert c.grade(strict=True) == "FLAKY"
    assert Finding("SSE-5", "x", "y", kind="harness", flaky="x").grade(True) == "ERROR"

    assert _grade([_flaky()], strict=False) == "FLAKY"
    # a failure that recurred elsewhere (another test) is worse than a flaky one
    assert _grade([_flaky(), Finding("SSE-5", "x", "y")], strict=False) == "FAIL"
    # a flaky failure is worse than a warning (a decision part of a documented rule)
    warn = Finding("SSE-5", "a", "b", level="C")
    assert _grade([_flaky(), warn], strict=False) == "FLAKY"


def test_flaky_gates_under_strict_or_as_flaky_says() -> None:
    verdicts = grade_rules([_flaky()], {("SSE-5", "all"): 1}, {}, False)
    assert counts(verdicts)["FLAKY"] == 1
    assert overall(verdicts) == "PASS"  # not gating by default
    for strict, policy, gates in [
        (False, None, False),
        (True, None, True),
        (False, "fail", True),
        (True, "warn", False),  # --flaky overrides --strict
        (True, "fail", True),
        (False, "warn", False),
    ]:
        assert flaky_gates(strict, policy) is gates
        assert overall(verdicts, flaky_fails=flaky_gates(strict, policy)) == (
            "FAIL" if gates else "PASS"
        )
    # FLAKY never hides a real FAIL or ERROR
    both = grade_rules([_flaky(), Finding("SSE-1", "200", "500")], {("SSE-5", "all"): 1}, {}, False)
    assert overall(both) == "FAIL"


# -- merging the attempts ----------------------------------------------------------------------
def _attempt(number: int, findings: list[Finding], examined: list[str]) -> Attempt:
    rec = TestRecord("suite.py::test_x", findings=findings, exercised=examined)
    return Attempt(number, [], [rec])


def test_merge_flaky_recurred_and_a_failure_only_a_rerun_saw() -> None:
    first = _attempt(
        1,
        [Finding("SSE-5", "one terminal", "none"), Finding("SSE-1", "200", "500")],
        ["SSE-5", "SSE-1", "SSE-3"],
    )
    second = _attempt(
        2,
        [Finding("SSE-1", "200", "502"), Finding("SSE-3", "event names", "message")],
        ["SSE-5", "SSE-1", "SSE-3"],
    )
    records, conf = merge([first, second], strict=False, stop_why="settled")
    assert conf is not None
    assert conf.outcome == "flaky"
    assert conf.rules == ["SSE-1", "SSE-3", "SSE-5"]
    found = records[-1].findings
    by_rule: dict[str, list[Finding]] = {}
    for f in found:
        by_rule.setdefault(f.rule, []).append(f)
    # SSE-5 failed on attempt 1 only: FLAKY, with the first attempt's observation
    (sse5,) = by_rule["SSE-5"]
    assert sse5.got == "none"
    assert sse5.grade(False) == "FLAKY"
    assert sse5.flaky == "failed on attempt 1, not on attempt 2 of 2"
    # SSE-1 recurred: the first attempt's finding stays FAIL, with a note saying so
    fail, note = by_rule["SSE-1"]
    assert fail.got == "500"
    assert fail.grade(False) == "FAIL"
    assert note.is_note
    assert "recurred on attempt 2 (1 of 1 re-runs)" in note.got
    # SSE-3 passed on attempt 1 and failed on attempt 2: FLAKY too, with attempt 2's finding
    (sse3,) = by_rule["SSE-3"]
    assert sse3.got == "message"
    assert sse3.grade(False) == "FLAKY"
    assert sse3.flaky == "failed on attempt 2 only, not on attempt 1 of 2"


def test_merge_a_rerun_that_could_not_judge_keeps_the_fail() -> None:
    first = _attempt(1, [Finding("SSE-5", "one terminal", "none")], ["SSE-5"])
    broke = _attempt(2, [Finding("SSE-5", "a verdict", "harness error", kind="harness")], [])
    records, conf = merge([first, broke], strict=False, stop_why="not judged")
    assert conf is not None
    assert conf.outcome == "not judged"
    fail, note = records[-1].findings
    assert fail.grade(False) == "FAIL"
    assert fail.flaky is None
    assert note.is_note
    assert "not confirmed" in note.got
    # the harness's own error on the re-run proves nothing about the target: not carried over
    assert all(f.kind == "target" for f in records[-1].findings)


# -- what forbids a re-run -------------------------------------------------------------------
@dataclass
class _State:
    strict: bool = False
    budget: Any = None
    agent_calls: Any = None
    findings: list[Finding] = field(default_factory=list)


def test_no_rerun_when_the_target_is_abandoned_or_the_budget_is_spent(tmp_path: Path) -> None:
    failing = _attempt(1, [Finding("SSE-5", "one terminal", "none")], ["SSE-5"])
    healthy = Budget(Limits())
    assert Confirmer(_State(budget=healthy), 1)._why_stop([failing]) == ""  # re-run it
    # streams abandoned (a target whose streams never end)
    degraded = Budget(Limits())
    degraded.strikes.append("outlived 30 s")
    degraded.window_end_ns = 1
    why = Confirmer(_State(budget=degraded), 1)._why_stop([failing])
    assert why.startswith("budget: ")
    assert "stream tests abandoned" in why
    # the breaker counts failed exchanges
    breaker = Budget(Limits())
    breaker.consecutive_failures = 1
    assert "not usable" in Confirmer(_State(budget=breaker), 1)._why_stop([failing])
    # the run's deadline passed
    late = Budget(Limits(run_timeout=0.001))
    late.deadline = 0.0
    assert "budget" in Confirmer(_State(budget=late), 1)._why_stop([failing])
    # an exchange of the test timed out: a re-run would pay the timeout again
    failing.unhealthy = "POST /x timed out"
    assert "timed out" in Confirmer(_State(budget=healthy), 1)._why_stop([failing])
    failing.unhealthy = None
    # the agent calls left are fewer than the test spent
    ledger = AgentCalls(2, tmp_path / "ledger.json")
    failing.agent_calls = 3
    why = Confirmer(_State(budget=healthy, agent_calls=ledger), 1)._why_stop([failing])
    assert "2 agent call(s) left" in why
    # never re-run: an ERROR, a test the cap cut short, an expected failure
    err = _attempt(1, [Finding("SSE-5", "x", "y"), Finding("SSE-1", "a", "b", kind="budget")], [])
    assert Confirmer(_State(budget=healthy), 1)._why_stop([err]) == "not eligible"
    capped = _attempt(1, [Finding("SSE-5", "x", "y")], ["SSE-5"])
    capped.limited = "agent-call budget spent"
    assert Confirmer(_State(budget=healthy), 1)._why_stop([capped]) == "not eligible"
    # and a note says why a failing test was not re-run
    records, conf = merge([failing], strict=False, stop_why=why)
    assert conf is not None
    assert conf.outcome == "not judged"
    assert any(f.is_note and "agent call(s) left" in f.got for f in records[-1].findings)


# -- the protocol, through the plugin (a suite that sends no request) ------------------------------
SUITE = """
import json
import os
from pathlib import Path

import pytest

from chatconform.verdicts import Finding, clean, judged

COUNTS = Path(os.environ["CONFIRM_COUNTS"])


def bump(name: str) -> int:
    path = COUNTS / f"{name}.count"
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    return n


@pytest.mark.rule("SSE-5")
def test_fails_once(expect):
    if bump("once") == 1:
        expect.check(judged([Finding("SSE-5", "one terminal frame", "none (attempt 1)")], "SSE-5"))
    else:
        expect.check(clean("SSE-5"))


@pytest.mark.rule("SSE-1")
def test_fails_always(expect):
    bump("always")
    expect.check(judged([Finding("SSE-1", "HTTP 200", "HTTP 500")], "SSE-1"))


@pytest.mark.rule("SSE-7")
def test_harness_breaks(expect):
    bump("harness")
    expect.check(clean("SSE-7"))
    raise RuntimeError("a bug of ours")


@pytest.mark.rule("SSE-3")
def test_passes(expect):
    bump("passes")
    expect.check(clean("SSE-3"))
"""


def _plugin_run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "test_confirm_suite.py").write_text(SUITE, encoding="utf-8")
    counts_dir = tmp_path / "counts"
    counts_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYTE_")}
    env.update(CONFIRM_COUNTS=str(counts_dir), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    cmd = [
        sys.executable, "-m", "pytest", "-p", "chatconform.plugin", "-p", "no:cacheprovider",
        "-q", "-rA", "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"),
        "--base-url", "http://127.0.0.1:9/api/v1", "--report-dir", str(tmp_path / "reports"),
        "--junitxml", str(tmp_path / "junit.xml"), str(tmp_path / "test_confirm_suite.py"), *args,
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text(encoding="utf-8"))
    runs = {p.stem.removesuffix(".count"): int(p.read_text()) for p in counts_dir.iterdir()}
    return proc, (summary, runs)


@pytest.mark.parametrize("workers", [0, 2])
def test_plugin_reruns_a_failing_test_and_names_the_flaky_one(tmp_path: Path, workers: int) -> None:
    """In one process, and under pytest-xdist (the records of all attempts reach the controller
    in one report; the earlier attempts travel as "rerun" reports)."""
    xdist = ("-p", "xdist", "-n", str(workers)) if workers else ()
    proc, (summary, runs) = _plugin_run(tmp_path, "--confirm", "2", *xdist)
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out  # SSE-1 recurred: FAIL
    # re-run until it passed (once), every time (twice more), never (ERROR, PASS)
    assert runs == {"once": 2, "always": 3, "harness": 1, "passes": 1}
    rules = {r["id"]: r for r in summary["rules"]}
    assert rules["SSE-5"]["verdict"] == "FLAKY"
    assert rules["SSE-5"]["findings"][0]["got"] == "none (attempt 1)"  # the failing observation
    assert "not on attempt 2" in rules["SSE-5"]["findings"][0]["flaky"]
    assert rules["SSE-1"]["verdict"] == "FAIL"
    assert "recurred on attempts 2-3 (2 of 2 re-runs)" in rules["SSE-1"]["notes"][0]["got"]
    assert rules["SSE-7"]["verdict"] == "ERROR"
    assert rules["SSE-3"]["verdict"] == "PASS"
    assert summary["counts"]["FLAKY"] == 1
    outcomes = {c["test"].split("::")[-1]: c["outcome"] for c in summary["confirm"]["tests"]}
    assert outcomes == {"test_fails_once": "flaky", "test_fails_always": "recurred"}
    assert "3 rerun" in out  # pytest's count of the attempts logged as re-runs
    cases = {c.get("name"): c for c in ElementTree.parse(tmp_path / "junit.xml").iter("testcase")}
    flaky = cases["test_fails_once"]
    assert [c.tag for c in flaky] == ["properties"]  # passed, neither failure nor skipped
    (prop,) = flaky.iter("property")
    assert prop.get("name") == "chatconform-flaky"
    assert prop.get("value") == "flaky: SSE-5 failed on attempt 1, not on attempt 2"
    assert cases["test_fails_always"].find("failure") is not None


@pytest.mark.parametrize(
    ("args", "code", "verdict"),
    [
        ((), pytest.ExitCode.OK, "FLAKY"),
        (("--strict-contract",), pytest.ExitCode.TESTS_FAILED, "FLAKY"),
        (("--strict-contract", "--flaky", "warn"), pytest.ExitCode.OK, "FLAKY"),
        (("--flaky", "fail"), pytest.ExitCode.TESTS_FAILED, "FLAKY"),
        (("--confirm", "0"), pytest.ExitCode.TESTS_FAILED, "FAIL"),
    ],
)
def test_plugin_flaky_gates_as_options_say(
    tmp_path: Path, args: tuple[str, ...], code: int, verdict: str
) -> None:
    confirm = () if "--confirm" in args else ("--confirm", "1")
    proc, (summary, _) = _plugin_run(tmp_path, "-k", "fails_once", *confirm, *args)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert {r["id"]: r["verdict"] for r in summary["rules"]}["SSE-5"] == verdict


# -- against the reference ----------------------------------------------------------------------
def test_a_fault_that_recurs_stays_fail(tmp_path: Path) -> None:
    with reference("--fault", "no-terminal") as server:
        run = chatconform(
            "run", "--target-file", str(server.credentials), "--suite", "streaming",
            report_dir=tmp_path,
        )  # fmt: skip
    assert run.code == 1, run.stdout[-3000:] + run.stderr[-2000:]
    rule = next(r for r in run.summary["rules"] if r["id"] == "SSE-5")
    assert rule["verdict"] == "FAIL"
    assert all(f.get("flaky") is None for f in rule["findings"])
    assert rule["notes"]
    assert all("recurred on attempt 2" in n["got"] for n in rule["notes"])
    tests = run.summary["confirm"]["tests"]
    assert tests
    assert {t["outcome"] for t in tests} == {"recurred"}
    assert run.summary["confirm"]["reruns"] == 1  # `run` confirms once by default


def test_pytest_suites_strict_expectations_fails_on_xpass(tmp_path: Path) -> None:
    """`pytest suites/ --strict-expectations` exits non-zero on an XPASS, as `run` does."""
    entries = tmp_path / "expect.yaml"
    entries.write_text(
        "expectations:\n  - rule: SSE-5\n    reason: tracked\n    expires: 2099-12-31\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYTE_")}
    env.update(CHATCONFORM_QUIET_SUMMARY="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    base = [
        sys.executable, "-m", "pytest", str(ROOT / "suites" / "test_streaming.py"),
        "-c", str(ROOT / "suites" / "run.ini"), "-p", "chatconform.plugin", "-p", "no:xdist",
        "-p", "no:cacheprovider", "-q", "-k", "test_plain_reply_stream",
        "--expectations", str(entries),
    ]  # fmt: skip
    codes = {}
    for strict in (False, True):
        report = tmp_path / f"r{int(strict)}"
        cmd = [*base, "--report-dir", str(report)] + (["--strict-expectations"] if strict else [])
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
        assert {r["id"]: r["verdict"] for r in summary["rules"]}["SSE-5"] == "XPASS"
        codes[strict] = (proc.returncode, summary["verdict"], proc.stdout[-2000:])
    assert codes[False][:2] == (pytest.ExitCode.OK, "PASS"), codes
    assert codes[True][:2] == (pytest.ExitCode.TESTS_FAILED, "FAIL"), codes


# -- the reports --------------------------------------------------------------------------------
def _summary_with_flaky() -> dict[str, Any]:
    finding = _flaky().to_json()
    return {
        "verdict": "PASS",
        "strict": False,
        "target": {"baseUrl": "http://127.0.0.1:1/api/v1"},
        "counts": {"PASS": 1, "FAIL": 0, "WARN": 0, "SKIP": 0, "ERROR": 0, "FLAKY": 1},
        "rules": [
            {"id": "SSE-5", "level": "D", "family": "streaming", "title": "t", "verdict": "FLAKY",
             "reason": finding["message"], "tests": ["t.py::a"], "findings": [finding],
             "notes": [], "clauses": []},
            {"id": "SSE-1", "level": "D", "family": "streaming", "title": "t", "verdict": "PASS",
             "reason": "", "tests": [], "findings": [], "notes": [], "clauses": []},
        ],
        "confirm": {"reruns": 1, "flaky": "warn", "flakyGates": False, "tests": [
            {"test": "t.py::a", "attempts": 2, "outcome": "flaky", "rules": ["SSE-5"],
             "detail": "SSE-5 failed on attempt 1, not on attempt 2"}]},
    }  # fmt: skip


def test_summary_pages_and_matrix_count_flaky(tmp_path: Path) -> None:
    from chatconform.report import write_run_reports
    from chatconform.report.matrix import build_matrix, render_matrix_html

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(_summary_with_flaky()), encoding="utf-8")
    write_run_reports(run)
    md = (run / "summary.md").read_text(encoding="utf-8")
    assert "1 FLAKY" in md
    assert "FLAKY: `t.py::a` (2 attempts): SSE-5 failed on attempt 1, not on attempt 2" in md
    assert "| SSE-5 | D | 🔁 FLAKY |" in md
    html = (run / "summary.html").read_text(encoding="utf-8")
    assert '<span data-count="FLAKY"><span class="badge v-FLAKY">FLAKY</span> 1</span>' in html
    assert 'id="reruns-table"' in html
    assert 'data-outcome="flaky"' in html
    assert "did not recur" in html
    matrix = render_matrix_html(build_matrix([run]))
    assert "1 FLAKY" in matrix
    assert 'class="badge v-FLAKY"' in matrix


def _xfailed(reason: str) -> FakeReport:
    report = FakeReport(skipped=True)
    report.wasxfail = reason  # type: ignore[attr-defined]  # set by pytest on an xfailed report
    return report


@dataclass
class _AllureState:
    strict: bool = False
    target: Any = None
    findings: list[Finding] = field(default_factory=list)
    expectations: list[Any] = field(default_factory=list)
    flaky_fails: bool = False


def _allure(state: _AllureState, rule: str, report: Any) -> Any:
    from allure_commons.model2 import TestResult

    from chatconform.report.allure_results import AllureAugmenter

    for f in state.findings:
        f.test = "suite.py::test_x"
    aug = AllureAugmenter(config=None, state=state, alluredir=Path("."))  # type: ignore[arg-type]
    aug.current = FakeItem("suite.py::test_x", (rule,))  # type: ignore[assignment]
    aug.reports = [report]
    result = TestResult(name="test_x", status="failed")
    aug.augment(result)
    return result


def _labels(result: Any, name: str) -> list[str]:
    return [lb.value for lb in result.labels if lb.name == name]


def test_allure_shows_flaky_xfail_and_xpass_distinctly() -> None:
    import re

    from chatconform.expectations import parse_entries
    from chatconform.report.allure_results import CATEGORIES

    def category(r: Any) -> str | None:
        for c in CATEGORIES:
            if r.status in c["matchedStatuses"] and re.search(
                c.get("messageRegex", ""), r.statusDetails.message
            ):
                return str(c["name"])
        return None

    r = _allure(_AllureState(findings=[_flaky()]), "SSE-5", FakeReport())
    assert (r.status, _labels(r, "verdict")) == ("passed", ["FLAKY"])
    assert r.statusDetails.flaky is True
    assert r.statusDetails.message.startswith("FLAKY SSE-5")
    assert category(r) == "Flaky (FLAKY): failures that did not recur when re-run"
    gating = _allure(_AllureState(findings=[_flaky()], flaky_fails=True), "SSE-5", FakeReport())
    assert gating.status == "failed"
    assert gating.statusDetails.flaky is True

    entries = parse_entries(
        [{"rule": "SSE-5", "reason": "tracked", "expires": "2099-12-31"}], "x.yaml"
    )
    fail = Finding("SSE-5", "one terminal", "none")
    r = _allure(
        _AllureState(findings=[fail], expectations=entries),
        "SSE-5",
        _xfailed("XFAIL SSE-5 (expires 2099-12-31)"),
    )
    assert (r.status, _labels(r, "verdict")) == ("skipped", ["XFAIL"])
    assert r.statusDetails.message.startswith("XFAIL")
    assert category(r) == "Expected failures (XFAIL): known failures in the expectations file"

    state = _AllureState(findings=[], expectations=entries)
    examined = Outcome().saw("SSE-5")
    item_stash = {"examined": examined}
    r = _allure_passing(state, item_stash)
    assert (r.status, _labels(r, "verdict")) == ("passed", ["XPASS"])
    assert "remove this entry" in r.statusDetails.message
    assert category(r) == "Expected failures that pass now (XPASS): remove the entry"


def _allure_passing(state: _AllureState, stash: dict[str, Outcome]) -> Any:
    """A passing test that examined SSE-5 (its Expect outcome in the item's stash)."""
    from allure_commons.model2 import TestResult

    from chatconform.plugin import EXPECT, Expect
    from chatconform.report.allure_results import AllureAugmenter

    expect = Expect()
    expect.check(stash["examined"])
    item = FakeItem("suite.py::test_x", ("SSE-5",))
    item.stash = {EXPECT: expect}  # type: ignore[attr-defined]
    aug = AllureAugmenter(config=None, state=state, alluredir=Path("."))  # type: ignore[arg-type]
    aug.current = item  # type: ignore[assignment]
    aug.reports = [FakeReport()]  # type: ignore[list-item]
    result = TestResult(name="test_x", status="passed")
    aug.augment(result)
    return result


def test_config_and_cli_take_confirm_and_flaky(tmp_path: Path) -> None:
    (tmp_path / "chatconform.toml").write_text(
        '[run]\nconfirm = 3\nflaky = "fail"\n', encoding="utf-8"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "chatconform.cli", "config", "show"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert any(ln.split()[:3] == ["confirm", "=", "3"] for ln in proc.stdout.splitlines()), (
        proc.stdout
    )
    assert any(ln.split()[:3] == ["flaky", "=", "fail"] for ln in proc.stdout.splitlines())
    bad = subprocess.run(
        [sys.executable, "-m", "chatconform.cli", "run", "--confirm", "-1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "chatconform: --confirm must be a whole number, 0 or more (got -1)"
    )
