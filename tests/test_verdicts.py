"""Unit tests of chatconform.verdicts: findings graded into one verdict per contract rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatconform.rules import FAMILIES, RULES, Level
from chatconform.verdicts import Finding, RuleVerdict, Verdict, counts, grade_rules, overall

from observations import problem_response


def by_id(verdicts: list[RuleVerdict]) -> dict[str, RuleVerdict]:
    return {v.id: v for v in verdicts}


def grade(
    findings: list[Finding] | None = None,
    exercised: dict[str, list[str]] | None = None,
    skipped: dict[str, str] | None = None,
    strict: bool = False,
    families: list[str] | None = None,
) -> dict[str, RuleVerdict]:
    return by_id(grade_rules(findings or [], exercised or {}, skipped or {}, strict, families))


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


def test_d_finding_fails() -> None:
    v = grade([Finding("SSE-5", "one done", "none")])["SSE-5"]
    assert v.verdict == "FAIL"
    assert v.reason == "expected one done; got none"
    assert len(v.findings) == 1


def test_d_finding_fails_even_when_exercised_elsewhere() -> None:
    v = grade([Finding("SSE-5", "e", "g")], exercised={"SSE-5": ["t1", "t2"]})["SSE-5"]
    assert v.verdict == "FAIL"
    assert v.tests == ["t1", "t2"]


@pytest.mark.parametrize(("strict", "verdict"), [(False, "WARN"), (True, "FAIL")])
def test_c_finding_warns_unless_strict(strict: bool, verdict: str) -> None:
    vs = grade(
        [Finding("SSE-7", "seq 2", "seq 3"), Finding("SES-1", "201", "200", level="C")],
        strict=strict,
    )
    assert vs["SSE-7"].verdict == verdict
    assert vs["SES-1"].verdict == verdict


def test_worst_finding_wins() -> None:
    findings = [
        Finding("SES-1", "201", "200", level="C"),
        Finding("SES-1", "agentId a", "agentId b"),
        Finding("SES-1", "201", "202", level="C"),
    ]
    v = grade(findings)["SES-1"]
    assert v.verdict == "FAIL"
    assert len(v.findings) == 3
    assert v.reason == findings[0].message


def test_exercised_without_finding_passes() -> None:
    v = grade(exercised={"ERR-4": ["test_a"]})["ERR-4"]
    assert v.verdict == "PASS"
    assert v.reason == ""
    assert v.tests == ["test_a"]


def test_exercised_and_partly_skipped_passes_with_reason() -> None:
    v = grade(exercised={"AUTH-2": ["t"]}, skipped={"AUTH-2": "no read-only key"})["AUTH-2"]
    assert v.verdict == "PASS"
    assert v.reason == "partly not exercised: no read-only key"


def test_skipped_is_skip_with_reason() -> None:
    v = grade(skipped={"AUTH-2": "no read-only key given"})["AUTH-2"]
    assert v.verdict == "SKIP"
    assert v.reason == "no read-only key given"


def test_finding_beats_skip() -> None:
    v = grade([Finding("AUTH-2", "403", "200")], skipped={"AUTH-2": "x"})["AUTH-2"]
    assert v.verdict == "FAIL"


def test_family_not_selected_is_skip() -> None:
    vs = grade(families=["streaming"])
    assert vs["SES-1"].verdict == "SKIP"
    assert vs["SES-1"].reason == "suite 'sessions' not selected"
    assert vs["SSE-5"].verdict == "SKIP"
    assert vs["SSE-5"].reason == "no selected test exercised this rule"


def test_skip_reason_beats_family_not_selected() -> None:
    v = grade(skipped={"SES-1": "target refused"}, families=["streaming"])["SES-1"]
    assert v.reason == "target refused"


def test_nothing_run_is_all_skip() -> None:
    vs = grade_rules([], {}, {}, strict=True)
    assert {v.verdict for v in vs} == {"SKIP"}
    assert all(v.reason == "no selected test exercised this rule" for v in vs)


def test_to_json() -> None:
    v = grade([Finding("SSE-7", "e", "g")], exercised={"SSE-7": ["t"]})["SSE-7"]
    j = v.to_json()
    assert j["id"] == "SSE-7"
    assert j["verdict"] == "WARN"
    assert j["tests"] == ["t"]
    assert j["findings"][0]["level"] == "C"


# -- overall / counts ------------------------------------------------------------------------


def test_overall_and_counts() -> None:
    vs = grade_rules(
        [Finding("SSE-7", "e", "g"), Finding("ERR-1", "e", "g")],
        {"ERR-4": ["t"], "SSE-7": ["t"]},
        {"AUTH-2": "no key"},
        strict=False,
    )
    c = counts(vs)
    assert c == {"PASS": 1, "FAIL": 1, "WARN": 1, "SKIP": len(RULES) - 3}
    assert sum(c.values()) == len(RULES)
    assert overall(vs) == "FAIL"


def test_overall_passes_with_warnings_and_skips() -> None:
    vs = grade_rules([Finding("SSE-7", "e", "g")], {"ERR-4": ["t"]}, {}, strict=False)
    assert counts(vs)["WARN"] == 1
    assert overall(vs) == "PASS"
    vs = grade_rules([Finding("SSE-7", "e", "g")], {"ERR-4": ["t"]}, {}, strict=True)
    assert overall(vs) == "FAIL"


def test_overall_of_nothing_is_pass() -> None:
    assert overall([]) == "PASS"
    assert counts([]) == {"PASS": 0, "FAIL": 0, "WARN": 0, "SKIP": 0}


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
