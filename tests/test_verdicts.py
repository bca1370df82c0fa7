"""Unit tests of chatconform.verdicts: findings graded into one verdict per contract rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatconform.rules import FAMILIES, RULES, Level, UnknownRule, clause_of
from chatconform.verdicts import (
    ClauseKey,
    Finding,
    Outcome,
    RuleVerdict,
    Verdict,
    clean,
    counts,
    grade_rules,
    judged,
    overall,
)

from observations import problem_response, rules


def by_id(verdicts: list[RuleVerdict]) -> dict[str, RuleVerdict]:
    return {v.id: v for v in verdicts}


def seen(*keys: str | tuple[str, str], n: int = 1) -> dict[ClauseKey, int]:
    """Evidence: `n` observations of each rule (its sole clause) or (rule, clause)."""
    out: dict[ClauseKey, int] = {}
    for k in keys:
        rid, cid = (k, None) if isinstance(k, str) else k
        out[(rid, clause_of(rid, cid))] = n
    return out


def grade(
    findings: list[Finding] | None = None,
    evidence: dict[ClauseKey, int] | None = None,
    skipped: dict[str, str] | None = None,
    strict: bool = False,
    families: list[str] | None = None,
    tests: dict[str, list[str]] | None = None,
    unexercised: dict[ClauseKey, str] | None = None,
) -> dict[str, RuleVerdict]:
    return by_id(
        grade_rules(
            findings or [],
            evidence or {},
            skipped or {},
            strict,
            families,
            tests=tests,
            unexercised=unexercised,
        )
    )


# -- Finding ---------------------------------------------------------------------------------


def test_finding_level_defaults_to_the_rules_level() -> None:
    assert Finding("SSE-5", "e", "g").effective_level() == "D"
    assert Finding("SSE-7", "e", "g").effective_level() == "C"
    assert Finding("SES-1", "e", "g", level="C").effective_level() == "C"


@pytest.mark.parametrize(
    ("rule", "level", "strict", "verdict"),
    [
        ("SSE-5", None, False, "FAIL"),
        ("SSE-5", None, True, "FAIL"),
        ("SSE-7", None, False, "WARN"),
        ("SSE-7", None, True, "FAIL"),
        ("SES-1", "C", False, "WARN"),
        ("SES-1", "C", True, "FAIL"),
        ("SES-1", "D", False, "FAIL"),
    ],
)
def test_finding_grade(rule: str, level: Level | None, strict: bool, verdict: Verdict) -> None:
    assert Finding(rule, "e", "g", level=level).grade(strict) == verdict


def test_finding_message_json_and_render() -> None:
    ex = problem_response(404)
    f = Finding("ERR-1", "problem+json", "text/html", level="C", reproduce="curl x", exchange=ex)
    assert f.message == "expected problem+json; got text/html"
    j = f.to_json()
    assert j["rule"] == "ERR-1"
    assert j["level"] == "C"
    assert j["message"] == f.message
    assert j["reproduce"] == "curl x"
    assert "exchange" not in j
    text = f.render(strict=False)
    assert text.startswith(f"ERR-1 (C, WARN) {RULES['ERR-1'].title}")
    assert "expected: problem+json" in text
    assert "got:      text/html" in text
    assert "reproduce: curl x" in text
    assert "(C, FAIL)" in f.render(strict=True)
    assert "reproduce" not in Finding("ERR-1", "a", "b").render(strict=False)


def test_findings_compare_without_their_exchange() -> None:
    assert Finding("ERR-1", "a", "b", exchange=problem_response(404)) == Finding("ERR-1", "a", "b")


# -- grade_rules -----------------------------------------------------------------------------


def test_one_verdict_per_rule_in_contract_order() -> None:
    verdicts = grade_rules([], {}, {}, strict=False)
    assert [v.id for v in verdicts] == list(RULES)
    for v in verdicts:
        r = RULES[v.id]
        assert (v.level, v.family, v.title) == (r.level, r.family, r.title)
        assert [c.id for c in v.clauses] == list(r.clause_ids)


def test_d_finding_fails() -> None:
    v = grade([Finding("SSE-5", "one done", "none")])["SSE-5"]
    assert v.verdict == "FAIL"
    assert v.reason == "expected one done; got none"
    assert len(v.findings) == 1


def test_d_finding_fails_even_with_clean_evidence_elsewhere() -> None:
    v = grade(
        [Finding("SSE-5", "e", "g")],
        seen("SSE-5", n=2),
        tests={"SSE-5": ["t2", "t1", "t2"]},
    )["SSE-5"]
    assert v.verdict == "FAIL"
    assert v.tests == ["t1", "t2"]
    assert [(c.id, c.verdict, c.evidence) for c in v.clauses] == [("all", "FAIL", 2)]


@pytest.mark.parametrize(("strict", "verdict"), [(False, "WARN"), (True, "FAIL")])
def test_c_finding_warns_unless_strict(strict: bool, verdict: str) -> None:
    vs = grade(
        [Finding("SSE-7", "seq 2", "seq 3"), Finding("SES-1", "201", "200", level="C")],
        strict=strict,
    )
    assert vs["SSE-7"].verdict == verdict
    assert vs["SES-1"].verdict == verdict


def test_worst_finding_wins_and_gives_the_reason() -> None:
    findings = [
        Finding("SES-1", "201", "200", level="C"),
        Finding("SES-1", "agentId a", "agentId b"),
        Finding("SES-1", "201", "202", level="C"),
    ]
    v = grade(findings)["SES-1"]
    assert v.verdict == "FAIL"
    assert len(v.findings) == 3
    assert v.reason == findings[1].message  # the first finding that graded FAIL, not a WARN


def test_evidence_without_finding_passes() -> None:
    v = grade(evidence=seen("ERR-4"), tests={"ERR-4": ["test_a"]})["ERR-4"]
    assert v.verdict == "PASS"
    assert v.reason == ""
    assert v.tests == ["test_a"]
    assert [c.to_json() for c in v.clauses] == [
        {"id": "all", "verdict": "PASS", "evidence": 1, "reason": ""}
    ]


def test_a_test_that_ran_but_examined_nothing_is_no_evidence() -> None:
    # being named by a test (its marker, `tests`) is never evidence: nothing examined is SKIP
    v = grade(tests={"ERR-4": ["test_a"]})["ERR-4"]
    assert v.verdict == "SKIP"
    assert v.reason == "not exercised by any check"
    assert v.clauses[0].evidence == 0


def test_zero_evidence_counts_as_none() -> None:
    assert grade(evidence={("ERR-4", "all"): 0})["ERR-4"].verdict == "SKIP"


def test_some_clauses_exercised_passes_with_the_partial_reason() -> None:
    v = grade(
        evidence=seen(("AUTH-2", "read-only")), skipped={"AUTH-2": "no write-only key given"}
    )["AUTH-2"]
    assert v.verdict == "PASS"
    assert v.partial == "1/2 clauses: write-only no write-only key given"
    assert v.reason == v.partial
    assert [(c.id, c.verdict, c.evidence) for c in v.clauses] == [
        ("read-only", "PASS", 1),
        ("write-only", "SKIP", 0),
    ]


def test_partial_names_each_clause_with_its_own_reason() -> None:
    v = grade(
        evidence=seen(("SSE-4", "delta"), n=3),
        unexercised={("SSE-4", "tool_call"): "no tool prompt given"},
    )["SSE-4"]
    assert v.verdict == "PASS"
    assert v.reason == (
        "1/3 clauses: tool_call no tool prompt given; kb_retrieval not exercised by any check"
    )
    assert v.clauses[0].evidence == 3


def test_a_clause_reason_beats_the_rule_wide_skip() -> None:
    v = grade(
        evidence=seen(("SSE-6", "done")),
        skipped={"SSE-6": "test stopped"},
        unexercised={("SSE-6", "error"): "no error prompt given"},
    )["SSE-6"]
    assert v.reason == "1/2 clauses: error no error prompt given"


def test_every_clause_exercised_is_a_full_pass() -> None:
    v = grade(evidence=seen(("SSE-6", "done"), ("SSE-6", "error")))["SSE-6"]
    assert (v.verdict, v.reason, v.partial) == ("PASS", "", "")


def test_partial_of_a_single_clause_rule_is_empty() -> None:
    assert grade(evidence=seen("ERR-3"))["ERR-3"].partial == ""
    assert grade()["ERR-3"].partial == ""


@pytest.mark.parametrize(
    ("level", "strict", "verdict"),
    [("C", False, "WARN"), ("C", True, "FAIL"), (None, False, "FAIL")],
)
def test_a_failed_clause_is_named_and_grades_the_rule(
    level: Level | None, strict: bool, verdict: Verdict
) -> None:
    f = Finding("SSE-4", "a ToolCallPayload", "no name", level=level, clause="tool_call")
    v = grade([f], seen(("SSE-4", "delta"), ("SSE-4", "tool_call")), strict=strict)["SSE-4"]
    assert v.verdict == verdict
    assert v.reason == "expected a ToolCallPayload; got no name"
    assert v.partial == "1/3 clauses: kb_retrieval not exercised by any check"
    assert [(c.id, c.verdict, c.evidence) for c in v.clauses] == [
        ("delta", "PASS", 1),
        ("tool_call", verdict, 1),
        ("kb_retrieval", "SKIP", 0),
    ]


def test_nothing_exercised_is_skip_with_the_clause_reason() -> None:
    v = grade(unexercised={("MSG-7", "dropped-mid-stream"): "the stream ended before a drop"})
    assert v["MSG-7"].verdict == "SKIP"
    assert v["MSG-7"].reason == "the stream ended before a drop"
    assert v["MSG-7"].clauses[0].reason == "the stream ended before a drop"


def test_skipped_is_skip_with_reason() -> None:
    v = grade(skipped={"AUTH-2": "no read-only key given"})["AUTH-2"]
    assert v.verdict == "SKIP"
    assert v.reason == "no read-only key given"
    assert {c.reason for c in v.clauses} == {"no read-only key given"}


def test_finding_beats_skip() -> None:
    v = grade([Finding("AUTH-2", "403", "200", clause="read-only")], skipped={"AUTH-2": "x"})
    assert v["AUTH-2"].verdict == "FAIL"
    assert [c.verdict for c in v["AUTH-2"].clauses] == ["FAIL", "SKIP"]


def test_family_not_selected_is_skip() -> None:
    vs = grade(families=["streaming"])
    assert vs["SES-1"].verdict == "SKIP"
    assert vs["SES-1"].reason == "suite 'sessions' not selected"
    assert vs["SSE-5"].verdict == "SKIP"
    assert vs["SSE-5"].reason == "not exercised by any check"


def test_skip_reason_beats_family_not_selected() -> None:
    v = grade(skipped={"SES-1": "target refused"}, families=["streaming"])["SES-1"]
    assert v.reason == "target refused"


def test_nothing_run_is_all_skip() -> None:
    vs = grade_rules([], {}, {}, strict=True)
    assert {v.verdict for v in vs} == {"SKIP"}
    assert all(v.reason == "not exercised by any check" for v in vs)
    assert all(c.evidence == 0 and c.verdict == "SKIP" for v in vs for c in v.clauses)


def test_to_json() -> None:
    v = grade([Finding("SSE-7", "e", "g")], seen("SSE-7"), tests={"SSE-7": ["t"]})["SSE-7"]
    j = v.to_json()
    assert j["id"] == "SSE-7"
    assert j["verdict"] == "WARN"
    assert j["tests"] == ["t"]
    assert j["findings"][0]["level"] == "C"
    assert j["findings"][0]["kind"] == "target"
    assert j["findings"][0]["clause"] == "all"
    assert j["clauses"] == [
        {"id": "all", "verdict": "WARN", "evidence": 1, "reason": "expected e; got g"}
    ]
    assert j["notes"] == []


# -- ERROR, notes ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["harness", "budget"])
def test_harness_and_budget_findings_are_error(kind: str) -> None:
    f = Finding("SSE-5", "the harness to judge this rule", "boom", kind=kind)  # type: ignore[arg-type]
    assert f.grade(strict=False) == "ERROR"
    assert f.grade(strict=True) == "ERROR"
    assert not f.is_note
    v = grade([f])["SSE-5"]
    assert v.verdict == "ERROR"
    assert v.reason == "expected the harness to judge this rule; got boom"


def test_harness_finding_on_a_rule_with_clean_evidence_is_error() -> None:
    f = Finding("ERR-4", "the harness to judge this rule", "boom", kind="harness")
    v = grade([f], seen("ERR-4", n=5))["ERR-4"]
    assert v.verdict == "ERROR"
    assert v.clauses[0].verdict == "ERROR"
    assert v.clauses[0].evidence == 5


def test_error_of_a_c_rule_stays_error_outside_strict() -> None:
    f = Finding("SSE-7", "e", "g", kind="budget")
    assert grade([f], strict=False)["SSE-7"].verdict == "ERROR"


@pytest.mark.parametrize("strict", [False, True])
def test_fail_beats_error(strict: bool) -> None:
    findings = [
        Finding("SSE-5", "judge", "boom", kind="harness"),
        Finding("SSE-5", "one done", "none"),
    ]
    v = grade(findings, seen("SSE-5"), strict=strict)["SSE-5"]
    assert v.verdict == "FAIL"
    assert v.reason == "expected one done; got none"


def test_error_beats_warn() -> None:
    findings = [Finding("SSE-7", "seq 2", "seq 3"), Finding("SSE-7", "j", "b", kind="harness")]
    assert grade(findings, seen("SSE-7"))["SSE-7"].verdict == "ERROR"


def test_error_on_one_clause_leaves_the_others_their_verdict() -> None:
    f = Finding("SSE-6", "judge", "boom", kind="harness", clause="error")
    v = grade([f], seen(("SSE-6", "done")))["SSE-6"]
    assert v.verdict == "ERROR"
    assert [(c.id, c.verdict) for c in v.clauses] == [("done", "PASS"), ("error", "ERROR")]


@pytest.mark.parametrize("evidence", [{}, {("ERR-2", "all"): 2}])
def test_notes_never_change_a_verdict(evidence: dict[ClauseKey, int]) -> None:
    note = Finding(
        "ERR-2", "a 400 for a body the contract lists", "200 for an unlisted one", level="I"
    )
    assert note.is_note
    for strict in (False, True):
        v = grade([note], evidence, strict=strict)["ERR-2"]
        assert v.verdict == ("PASS" if evidence else "SKIP")
        assert v.findings == []
        assert v.notes == [note]
        assert v.to_json()["notes"][0]["level"] == "I"
        assert {c.verdict for c in v.clauses} == {"PASS" if evidence else "SKIP"}


def test_a_note_beside_a_failure_is_kept_as_a_note() -> None:
    note = Finding("ERR-2", "n", "n", level="I")
    fail = Finding("ERR-2", "400", "200")
    v = grade([note, fail], seen("ERR-2"))["ERR-2"]
    assert (v.verdict, v.findings, v.notes) == ("FAIL", [fail], [note])


def test_a_harness_finding_of_level_i_is_still_error() -> None:
    f = Finding("ERR-2", "judge", "boom", level="I", kind="harness")
    assert not f.is_note
    assert grade([f], seen("ERR-2"))["ERR-2"].verdict == "ERROR"


# -- unknown rules and clauses ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "clause"),
    [("SSE-99", None), ("sse-5", None), ("SSE-4", "deltas"), ("ERR-4", "429"), ("ERR-3", "all")],
)
def test_a_finding_with_an_unknown_rule_or_clause_raises(rule: str, clause: str | None) -> None:
    with pytest.raises(UnknownRule):
        Finding(rule, "e", "g", clause=clause)


def test_evidence_with_an_unknown_rule_or_clause_raises() -> None:
    with pytest.raises(UnknownRule, match="SSE-99"):
        Outcome().saw("SSE-99")
    with pytest.raises(UnknownRule, match="name one"):
        Outcome().saw("SSE-4")  # a rule with several clauses: the clause must be named
    with pytest.raises(UnknownRule, match="no clause"):
        Outcome().not_exercised("SSE-6", "timeout", "x")


def test_a_finding_may_leave_the_clause_of_a_several_clause_rule_unnamed() -> None:
    f = Finding("SSE-4", "e", "g")
    assert f.clause_id is None
    v = grade([f], seen(("SSE-4", "delta")))["SSE-4"]
    assert v.verdict == "FAIL"  # the rule fails though no clause is charged
    assert [c.verdict for c in v.clauses] == ["PASS", "SKIP", "SKIP"]


# -- Outcome ---------------------------------------------------------------------------------


def test_outcome_is_a_list_of_findings_with_evidence() -> None:
    f = Finding("SSE-5", "e", "g")
    out = Outcome([f]).saw("SSE-5").saw("SSE-4", "delta", n=3).saw("SSE-7", n=0)
    assert out == [f]
    assert dict(out.examined) == {("SSE-5", "all"): 1, ("SSE-4", "delta"): 3}
    assert out.rules_examined() == {"SSE-5", "SSE-4"}
    assert Outcome() == []
    assert not Outcome().saw("SSE-5")  # evidence alone is no finding


def test_outcome_sums_keep_the_evidence_of_both_sides() -> None:
    a = clean("ERR-4").not_exercised("SSE-8", None, "one delta")
    b = judged([Finding("ERR-1", "e", "g")], "ERR-1").saw("ERR-4")
    b.not_exercised("SSE-8", None, "another reason")
    for total in (a + b, [] + a + b):  # noqa: RUF005 (list + Outcome is under test)
        assert isinstance(total, Outcome)
        assert dict(total.examined) == {("ERR-4", "all"): 2, ("ERR-1", "all"): 1}
        assert total.unexercised == {("SSE-8", "all"): "one delta"}  # the first reason stays
        assert rules(total) == {"ERR-1"}
    acc = Outcome()
    acc += a
    acc.extend(b)
    assert dict(acc.examined) == dict((a + b).examined)
    acc += [Finding("SSE-5", "e", "g")]  # a plain list adds findings, no evidence
    assert len(acc) == 2
    assert dict(acc.examined) == dict((a + b).examined)
    radd = [Finding("SSE-5", "e", "g")] + a  # noqa: RUF005 (Outcome.__radd__ under test)
    assert isinstance(radd, Outcome)
    assert dict(radd.examined) == {("ERR-4", "all"): 1}


def test_clean_and_judged() -> None:
    assert clean("SSE-6", "error", n=2) == []
    assert dict(clean("SSE-6", "error", n=2).examined) == {("SSE-6", "error"): 2}
    j = judged([Finding("ERR-1", "e", "g")], "ERR-1")
    assert rules(j) == {"ERR-1"}
    assert dict(j.examined) == {("ERR-1", "all"): 1}
    assert dict(judged([], "ERR-3").examined) == {("ERR-3", "429"): 1}


def test_outcome_evidence_graded() -> None:
    out = clean("SSE-4", "delta", n=4) + clean("ERR-4")
    out.not_exercised("SSE-4", "kb_retrieval", "no knowledge prompt given")
    vs = grade(list(out), out.examined, unexercised=out.unexercised)
    assert vs["ERR-4"].verdict == "PASS"
    assert vs["SSE-4"].verdict == "PASS"
    assert vs["SSE-4"].reason == (
        "1/3 clauses: tool_call not exercised by any check; kb_retrieval no knowledge prompt given"
    )
    assert vs["SSE-6"].verdict == "SKIP"


# -- overall / counts ------------------------------------------------------------------------


def test_overall_and_counts() -> None:
    vs = grade_rules(
        [Finding("SSE-7", "e", "g"), Finding("ERR-1", "e", "g")],
        seen("ERR-4", "SSE-7"),
        {"AUTH-2": "no key"},
        strict=False,
    )
    c = counts(vs)
    assert c == {
        "PASS": 1, "FAIL": 1, "WARN": 1, "SKIP": len(RULES) - 3, "ERROR": 0, "XFAIL": 0, "XPASS": 0,
        "FLAKY": 0,
    }  # fmt: skip
    assert sum(c.values()) == len(RULES)
    assert overall(vs) == "FAIL"


def test_overall_passes_with_warnings_and_skips() -> None:
    vs = grade_rules([Finding("SSE-7", "e", "g")], seen("ERR-4"), {}, strict=False)
    assert counts(vs)["WARN"] == 1
    assert overall(vs) == "PASS"
    vs = grade_rules([Finding("SSE-7", "e", "g")], seen("ERR-4"), {}, strict=True)
    assert overall(vs) == "FAIL"


def test_overall_is_error_when_nothing_failed_but_something_could_not_be_judged() -> None:
    harness = Finding("SSE-5", "judge", "boom", kind="harness")
    vs = grade_rules([harness, Finding("SSE-7", "e", "g")], seen("ERR-4"), {}, strict=False)
    c = counts(vs)
    assert (c["ERROR"], c["WARN"], c["PASS"], c["FAIL"]) == (1, 1, 1, 0)
    assert overall(vs) == "ERROR"
    vs = grade_rules([harness, Finding("ERR-1", "e", "g")], seen("ERR-4"), {}, strict=False)
    assert counts(vs)["ERROR"] == 1
    assert overall(vs) == "FAIL"  # a FAIL beats an ERROR elsewhere


def test_overall_of_nothing_is_pass() -> None:
    assert overall([]) == "PASS"
    assert counts([]) == {
        "PASS": 0, "FAIL": 0, "WARN": 0, "SKIP": 0, "ERROR": 0, "XFAIL": 0, "XPASS": 0, "FLAKY": 0,
    }  # fmt: skip


def test_overall_of_all_skip_is_pass() -> None:
    assert overall(grade_rules([], {}, {}, strict=True)) == "PASS"


# -- every rule id a check names exists --------------------------------------------------------

CHECKS_DIR = Path(__file__).resolve().parents[1] / "src" / "chatconform" / "checks"


def test_rule_ids_named_in_the_checks_are_contract_rules() -> None:
    # a finding under an unknown id would be dropped by grade_rules (it grades RULES only)
    named: set[str] = set()
    for path in CHECKS_DIR.glob("*.py"):
        named |= set(re.findall(r'"([A-Z]{2,4}-\d{1,2})"', path.read_text(encoding="utf-8")))
    named.discard("UTF-8")
    assert named
    assert named <= set(RULES)
    assert {r.family for r in RULES.values()} == set(FAMILIES)
