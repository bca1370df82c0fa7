"""Unit tests of chatconform.checks.common: the builders the checks share."""

from __future__ import annotations

import pytest

from chatconform.checks import common

from observations import (
    enveloped,
    exchange,
    json_response,
    levels,
    no_response,
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
    assert common.expect_status(ex, "SES-1", (200, 201)) == []
    found = common.expect_status(ex, "SES-1", 200, "C")
    assert rules(found) == {"SES-1"}
    assert levels(found, "SES-1") == {"C"}
    assert "HTTP 200" in found[0].expected
    assert levels(common.expect_status(no_response(), "SES-1", [200, 201]), "SES-1") == {"D"}


def test_expect_problem_code() -> None:
    ex = problem_response(404, "session_not_found")
    assert common.expect_problem_code(ex, "SES-7", 404, "session_not_found") == []
    # wrong status: the rule's level; wrong code: a C detail unless told
    assert levels(common.expect_problem_code(ex, "SES-3", 409, "x"), "SES-3") == {"C"}
    assert levels(common.expect_problem_code(ex, "SES-2", 409, "x"), "SES-2") == {"D"}
    found = common.expect_problem_code(ex, "SES-2", 404, "agent_not_found")
    assert rules(found) == {"SES-2"}
    assert levels(found, "SES-2") == {"C"}
    assert levels(common.expect_problem_code(ex, "SES-2", 404, "x", "D"), "SES-2") == {"D"}


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]"])
def test_expect_problem_code_without_a_problem_body(raw: bytes) -> None:
    ex = exchange(404, raw, content_type="application/problem+json")
    assert rules(common.expect_problem_code(ex, "SES-7", 404, "session_not_found")) == {"SES-7"}


def test_data_of() -> None:
    assert common.data_of(enveloped({"a": 1})) == {"a": 1}
    assert common.data_of(json_response(200, {"a": 1})) is None
    assert common.data_of(json_response(200, [1])) is None
    assert common.data_of(exchange(200, b"nope")) is None


def test_schema_findings() -> None:
    assert common.schema_findings(session(), "Session", "SES-4", None, "data", None) == []
    bad = session(status="x", createdAt="now")
    found = common.schema_findings(bad, "Session", "SES-4", None, "data", "C")
    assert len(found) == 1
    assert found[0].rule == "SES-4"
    assert found[0].level == "C"
    assert "(+1 more)" in found[0].got
    assert found[0].expected == "data to be a valid Session"
