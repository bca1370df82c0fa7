"""Unit tests of chatconform.checks.common: the builders the checks share."""

from __future__ import annotations

import pytest

from chatconform.checks import common
from chatconform.record import Exchange
from chatconform.rules import UnknownRule

from observations import (
    COMPLETIONS_PATH,
    enveloped,
    exchange,
    json_response,
    levels,
    no_response,
    problem_body,
    problem_response,
    rules,
    session,
)


def test_finding_carries_its_exchange_and_level() -> None:
    ex = enveloped(session())
    f = common.finding("SES-1", "a", "b", ex, "C")
    assert (f.rule, f.expected, f.got, f.level, f.exchange) == ("SES-1", "a", "b", "C", ex)


def test_short() -> None:
    assert common.short("abc") == "abc"
    assert common.short({"a": "é"}) == '{"a": "é"}'
    assert common.short("x" * 300, 10) == "x" * 10 + "…"
    assert common.short(None) == "null"


def test_expect_status() -> None:
    ex = enveloped(session(), status=201)
    assert common.expect_status(ex, "SES-1", 201) == []
    assert dict(common.expect_status(ex, "SES-1", 201).examined) == {("SES-1", "all"): 1}
    assert common.expect_status(ex, "SES-1", (200, 201)) == []
    found = common.expect_status(ex, "SES-1", 200, "C")
    assert rules(found) == {"SES-1"}
    assert levels(found, "SES-1") == {"C"}
    assert "HTTP 200" in found[0].expected
    assert dict(found.examined) == {("SES-1", "all"): 1}


def test_expect_status_without_a_response_is_a_finding_but_no_evidence() -> None:
    found = common.expect_status(no_response(), "SES-1", [200, 201])
    assert levels(found, "SES-1") == {"D"}
    assert not found.examined


def test_expect_status_names_the_clause() -> None:
    ex = problem_response(403, "forbidden")
    found = common.expect_status(ex, "AUTH-2", 403, clause="read-only")
    assert found == []
    assert dict(found.examined) == {("AUTH-2", "read-only"): 1}
    found = common.expect_status(ex, "AUTH-2", 404, clause="write-only")
    assert [f.clause for f in found] == ["write-only"]
    assert dict(found.examined) == {("AUTH-2", "write-only"): 1}
    with pytest.raises(UnknownRule):
        common.expect_status(ex, "AUTH-2", 403)  # a rule with clauses: name the one examined


def test_finding_of_a_request_not_sent_is_budget() -> None:
    ex = no_response("not sent: the run deadline passed")
    ex.not_sent = True
    f = common.finding("SES-1", "a", "b", ex)
    assert f.kind == "budget"
    assert f.grade(strict=True) == "ERROR"
    assert common.finding("SES-1", "a", "b", no_response()).kind == "target"


def test_expect_problem_code() -> None:
    ex = problem_response(404, "session_not_found")
    found = common.expect_problem_code(ex, "SES-7", 404, "session_not_found")
    assert found == []
    assert dict(found.examined) == {("SES-7", "all"): 1}
    # wrong status: the rule's level; wrong code: a C detail unless told
    found = common.expect_problem_code(ex, "SES-3", 409, "x", clause="unknown-agent")
    assert levels(found, "SES-3") == {"C"}
    assert [f.clause for f in found] == ["unknown-agent"]
    assert dict(found.examined) == {("SES-3", "unknown-agent"): 1}
    found = common.expect_problem_code(ex, "SES-2", 409, "x", clause="no-published-version")
    assert levels(found, "SES-2") == {"D"}
    found = common.expect_problem_code(ex, "SES-2", 404, "agent_not_found", clause="draft")
    assert rules(found) == {"SES-2"}
    assert levels(found, "SES-2") == {"C"}
    assert 'problem code "agent_not_found"' in found[0].expected
    assert dict(found.examined) == {("SES-2", "draft"): 1}
    found = common.expect_problem_code(ex, "SES-2", 404, "x", "D", clause="draft")
    assert levels(found, "SES-2") == {"D"}


@pytest.mark.parametrize(
    "ex",
    [
        exchange(404, b"", content_type="application/problem+json"),
        exchange(404, b"not json", content_type="application/problem+json"),
        exchange(404, b"[]", content_type="application/problem+json"),
        json_response(404, problem_body(404)),  # the right body, the wrong Content-Type
        json_response(404, {"error": "session_not_found"}, content_type="application/problem+json"),
    ],
    ids=["empty", "not-json", "array", "json-content-type", "no-problem-members"],
)
def test_expect_problem_code_without_a_problem_body_is_not_judged(ex: Exchange) -> None:
    # ERR-1 (every_response) fails this response; its code is not judged a second time
    assert common.basic_failure(ex) == "ERR-1"
    found = common.expect_problem_code(ex, "SES-7", 404, "session_not_found")
    assert found == []
    assert not found.examined
    assert found.unexercised == {
        ("SES-7", "all"): f"not judged: see ERR-1 on GET {ex.url} "
        "(no problem object to read a code from)"
    }


def test_expect_problem_code_wrong_status_is_judged_even_without_a_problem_body() -> None:
    ex = exchange(200, b"", content_type="text/plain")
    found = common.expect_problem_code(ex, "SES-7", 404, "session_not_found")
    assert rules(found) == {"SES-7"}
    assert not found.unexercised


@pytest.mark.parametrize(
    ("ex", "basic"),
    [
        (problem_response(404), None),
        (enveloped(session()), None),
        (json_response(200, session()), "ENV-1"),
        (exchange(204), None),
        (json_response(200, {"object": "chat.completion"}, path=COMPLETIONS_PATH), None),
        (json_response(500, {"error": "x"}, path=COMPLETIONS_PATH), "ERR-1"),
        (exchange(302), None),
        (no_response(), None),
    ],
    ids=["problem", "enveloped", "bare-2xx", "204", "completion", "500-json", "302", "none"],
)
def test_basic_failure(ex: Exchange, basic: str | None) -> None:
    assert common.basic_failure(ex) == basic


def test_data_of() -> None:
    assert common.data_of(enveloped({"a": 1})) == {"a": 1}
    assert common.data_of(json_response(200, {"a": 1})) is None
    assert common.data_of(json_response(200, [1])) is None
    assert common.data_of(exchange(200, b"nope")) is None


def test_schema_findings() -> None:
    ok = common.schema_findings(session(), "Session", "SES-4", None, "data", None)
    assert ok == []
    assert dict(ok.examined) == {("SES-4", "all"): 1}
    bad = session(status="x", createdAt="now")
    found = common.schema_findings(bad, "Session", "SES-4", None, "data", "C")
    assert len(found) == 1
    assert found[0].rule == "SES-4"
    assert found[0].level == "C"
    assert "(+1 more)" in found[0].got
    assert found[0].expected == "data to be a valid Session"
    assert dict(found.examined) == {("SES-4", "all"): 1}


def test_schema_findings_of_a_rule_with_clauses_leave_the_evidence_to_the_caller() -> None:
    # the caller knows which clause it examined (SSE-4's payload kinds): no guess here
    found = common.schema_findings({}, "ToolCallPayload", "SSE-4", None, "payload", "C")
    assert rules(found) == {"SSE-4"}
    assert not found.examined
