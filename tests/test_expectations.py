"""Known-failure expectations (chatconform.expectations): XFAIL, XPASS "remove this entry", expired
entries gate again, unobserved entries are never taken as fixed, a bad file is a usage error."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from chatconform import expectations as xp
from chatconform.cli import main
from chatconform.verdicts import ClauseKey, Finding, RuleVerdict, grade_rules, overall

TODAY = dt.date(2026, 11, 29)
LATER = TODAY + dt.timedelta(days=10)
EARLIER = TODAY - dt.timedelta(days=1)


def graded(
    findings: list[Finding], seen: list[ClauseKey], strict: bool = True
) -> list[RuleVerdict]:
    evidence: Counter[ClauseKey] = Counter(seen)
    return grade_rules(findings, evidence, {}, strict)


def entry(rule: str, expires: dt.date = LATER, clause: str | None = None) -> xp.Expectation:
    return xp.Expectation(rule, f"tracked: {rule}", expires, clause)


def one(verdicts: list[RuleVerdict], rid: str) -> RuleVerdict:
    return next(v for v in verdicts if v.id == rid)


def test_an_expected_failure_is_xfail_and_does_not_fail_the_run() -> None:
    vs = graded([Finding("SSE-7", "seq 3", "seq 4")], [("SSE-7", "all"), ("SSE-5", "all")])
    assert overall(vs) == "FAIL"
    out, results = xp.apply(vs, [entry("SSE-7")], TODAY, strict=True)
    assert one(out, "SSE-7").verdict == "XFAIL"
    assert "tracked: SSE-7" in one(out, "SSE-7").reason
    assert [r.status for r in results] == ["xfail"]
    assert overall(out) == "PASS"
    assert one(vs, "SSE-7").verdict == "FAIL"  # pure: the input is unchanged


def test_an_expected_failure_that_passes_is_xpass_remove_this_entry() -> None:
    vs = graded([], [("SSE-7", "all")])
    out, results = xp.apply(vs, [entry("SSE-7")], TODAY)
    assert one(out, "SSE-7").verdict == "XPASS"
    assert "remove this entry" in results[0].message
    assert overall(out) == "PASS"
    assert overall(out, xpass_fails=True) == "FAIL"  # --strict-expectations
    assert [r.entry.rule for r in xp.gates(results, True)] == ["SSE-7"]
    assert xp.gates(results, False) == []


def test_an_expired_entry_gates_again_naming_the_entry() -> None:
    vs = graded([Finding("SSE-7", "seq 3", "seq 4")], [("SSE-7", "all")])
    out, results = xp.apply(vs, [entry("SSE-7", EARLIER)], TODAY, strict=True)
    rv = one(out, "SSE-7")
    assert rv.verdict == "FAIL"
    assert results[0].status == "expired"
    assert f"expired on {EARLIER}" in rv.reason
    assert "tracked: SSE-7" in rv.reason
    assert overall(out) == "FAIL"
    # the last valid day still counts
    out, _ = xp.apply(vs, [entry("SSE-7", TODAY)], TODAY, strict=True)
    assert one(out, "SSE-7").verdict == "XFAIL"


@pytest.mark.parametrize("how", ["skip", "error"])
def test_an_entry_for_a_rule_not_judged_is_unobserved_never_fixed(how: str) -> None:
    findings = []
    if how == "error":
        findings = [Finding("SSE-7", "to judge", "budget refused", kind="budget")]
    vs = graded(findings, [])
    out, results = xp.apply(vs, [entry("SSE-7")], TODAY)
    assert results[0].status == "unobserved"
    assert one(out, "SSE-7").verdict == ("SKIP" if how == "skip" else "ERROR")
    assert "XPASS" not in {v.verdict for v in out}


def test_a_second_unexpected_failure_of_the_rule_still_fails() -> None:
    f1 = Finding("SSE-4", "a delta", "none", clause="delta")
    f2 = Finding("SSE-4", "a tool call", "none", clause="tool_call")
    vs = graded([f1, f2], [("SSE-4", "delta"), ("SSE-4", "tool_call")])
    out, results = xp.apply(vs, [entry("SSE-4", clause="delta")], TODAY, strict=True)
    rv = one(out, "SSE-4")
    assert rv.verdict == "FAIL"
    assert {c.id: c.verdict for c in rv.clauses}["delta"] == "XFAIL"
    assert results[0].status == "xfail"
    # both clauses expected: the rule is XFAIL
    both = [entry("SSE-4", clause="delta"), entry("SSE-4", clause="tool_call")]
    out, _ = xp.apply(vs, both, TODAY, strict=True)
    assert one(out, "SSE-4").verdict == "XFAIL"


def test_an_error_beside_an_expected_failure_stays_error() -> None:
    fs = [Finding("SSE-7", "seq 3", "seq 4"), Finding("SSE-7", "judge", "boom", kind="harness")]
    out, _ = xp.apply(graded(fs, [("SSE-7", "all")]), [entry("SSE-7")], TODAY, strict=True)
    assert one(out, "SSE-7").verdict == "ERROR"


def test_a_warn_is_expected_too() -> None:
    vs = graded([Finding("SSE-7", "seq 3", "seq 4")], [("SSE-7", "all")], strict=False)
    assert one(vs, "SSE-7").verdict == "WARN"
    out, results = xp.apply(vs, [entry("SSE-7")], TODAY, strict=False)
    assert one(out, "SSE-7").verdict == "XFAIL"
    assert results[0].verdict == "WARN"


def test_expected_test_failure_needs_every_failing_finding_covered() -> None:
    a, b = Finding("SSE-7", "x", "y"), Finding("SSE-5", "x", "y")
    assert xp.expected_test_failure([a], [entry("SSE-7")], TODAY) is not None
    assert xp.expected_test_failure([a, b], [entry("SSE-7")], TODAY) is None
    assert xp.expected_test_failure([a], [entry("SSE-7", EARLIER)], TODAY) is None


# -- the file ---------------------------------------------------------------------------------
def test_yaml_and_toml_files_read_the_same(tmp_path: Path) -> None:
    y = tmp_path / "e.yaml"
    y.write_text(
        "expectations:\n  - rule: SSE-4\n    clause: tool_call\n    reason: no tools yet\n"
        "    link: https://example.invalid/1\n    expires: 2027-01-31\n"
    )
    t = tmp_path / "e.toml"
    t.write_text(
        '[[expectations]]\nrule = "SSE-4"\nclause = "tool_call"\nreason = "no tools yet"\n'
        'link = "https://example.invalid/1"\nexpires = 2027-01-31\n'
    )
    assert xp.load(y) == xp.load(t)
    e = xp.load(y)[0]
    assert (e.rule, e.clause, e.expires) == ("SSE-4", "tool_call", dt.date(2027, 1, 31))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{rule: NOPE-9, reason: r, expires: 2030-01-01}]", "unknown rule 'NOPE-9'"),
        ("[{rule: SSE-4, clause: nope, reason: r, expires: 2030-01-01}]", "has no clause 'nope'"),
        ("[{rule: SSE-7, reason: r}]", "'expires' is required"),
        ("[{rule: SSE-7, reason: r, expires: soon}]", "is not a date"),
        ("[{rule: SSE-7, reason: r, expires: 2030-01-01, owner: me}]", "unknown key 'owner'"),
        (
            "[{rule: SSE-7, reason: r, expires: 2030-01-01}, {rule: SSE-7, reason: s, expires: 2030-01-01}]",
            "a second entry for SSE-7",
        ),
        ("expectations: [\n", "is not valid"),
    ],
)
def test_a_bad_file_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(xp.ExpectationsError, match=message):
        xp.load(p)


def test_run_with_an_unknown_rule_exits_2_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("[{rule: NOPE-9, reason: r, expires: 2030-01-01}]")
    code = main(["run", "--base-url", "http://127.0.0.1:9/api/v1", "--expectations", str(p)])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown rule 'NOPE-9'" in err
    assert "Traceback" not in err


# -- expectations update ------------------------------------------------------------------------
def _summary(verdicts: dict[str, str]) -> dict[str, object]:
    return {"rules": [{"id": rid, "verdict": v, "clauses": []} for rid, v in verdicts.items()]}


def test_update_keeps_old_entries_adds_new_drops_passing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    summary = _summary({"SSE-7": "XFAIL", "SSE-5": "FAIL", "SES-1": "PASS", "MSG-6": "SKIP"})
    (run / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "exp.yaml"
    out.write_text(
        "expectations:\n"
        "  - {rule: SSE-7, reason: kept reason, expires: 2027-02-02}\n"
        "  - {rule: SES-1, reason: fixed now, expires: 2027-02-02}\n"
        "  - {rule: MSG-6, reason: flaky, expires: 2027-02-02}\n"
    )
    assert main(["expectations", "update", "--from", str(run), "-o", str(out)]) == 0
    got = {e.rule: e for e in xp.load(out)}
    assert set(got) == {"SSE-7", "SSE-5", "MSG-6"}  # SES-1 passed: gone; MSG-6 unobserved: kept
    assert got["SSE-7"].reason == "kept reason"
    assert got["SSE-7"].expires == dt.date(2027, 2, 2)
    assert got["SSE-5"].reason == xp.PLACEHOLDER_REASON
    assert got["SSE-5"].expires == xp.today_utc() + dt.timedelta(days=30)


def test_update_writes_the_default_file_in_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "summary.json").write_text(json.dumps(_summary({"SSE-5": "FAIL"})))
    monkeypatch.chdir(tmp_path)
    assert main(["expectations", "update", "--from", str(tmp_path)]) == 0
    assert [e.rule for e in xp.load(tmp_path / xp.DEFAULT_FILE)] == ["SSE-5"]
    assert main(["expectations", "update", "--from", str(tmp_path / "nope")]) == 2


def test_junit_gets_one_case_per_entry(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="chatconform"/></testsuites>'
    )
    vs = graded([Finding("SSE-7", "a", "b")], [("SSE-7", "all"), ("SSE-5", "all")])
    _, results = xp.apply(vs, [entry("SSE-7"), entry("SSE-5"), entry("MSG-6")], TODAY, True)
    xp.append_to_junit(junit, xp.summary_json(results, "e.yaml", strict_expectations=True))
    suite = ET.parse(junit).getroot().find("testsuite[@name='chatconform.expectations']")
    assert suite is not None
    cases = {c.get("name"): c for c in suite}
    assert cases["SSE-7"].find("skipped").get("type") == "pytest.xfail"  # type: ignore[union-attr]
    assert "remove this entry" in cases["SSE-5"].find("failure").get("message")  # type: ignore[union-attr,operator]
    assert cases["MSG-6"].find("skipped").get("type") == "chatconform.unobserved"  # type: ignore[union-attr]
