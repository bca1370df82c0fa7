"""Unit tests of chatconform.checks.errors (ERR-1..4, ENV-1, OAI-7) on hand-built responses."""

from __future__ import annotations

from typing import Any

import pytest

from chatconform.checks import errors
from chatconform.record import Exchange
from chatconform.verdicts import Outcome, grade_rules

from observations import (
    COMPLETIONS_PATH,
    MESSAGES_PATH,
    completion_body,
    completion_stream,
    enveloped,
    exchange,
    json_response,
    levels,
    no_response,
    problem_body,
    problem_response,
    rules,
    session,
    session_stream,
)

# -- ERR-1: problem --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 429, 500, 503])
def test_problem_correct_is_fine(status: int) -> None:
    assert errors.problem(problem_response(status, "some_code")) == []


@pytest.mark.parametrize(
    "ex",
    [
        problem_response(404, type="about:blank"),
        problem_response(404, content_type="application/problem+json; charset=utf-8"),
        problem_response(404, content_type="Application/Problem+JSON"),
        problem_response(404, instance="/chat/sessions/x", extra={"a": 1}),
    ],
    ids=["about-blank", "charset", "case", "instance-and-extension"],
)
def test_problem_variations_are_fine(ex: Exchange) -> None:
    assert errors.problem(ex) == []


@pytest.mark.parametrize("ex", [enveloped(session()), exchange(302), no_response()])
def test_problem_not_an_error_is_not_checked(ex: Exchange) -> None:
    assert errors.problem(ex) == []


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "text/html", "application/problem+xml"]
)
def test_problem_wrong_content_type_is_err1(content_type: str) -> None:
    found = errors.problem(problem_response(404, content_type=content_type))
    assert rules(found) == {"ERR-1"}
    assert levels(found, "ERR-1") == {"D"}


def test_problem_no_content_type_is_err1() -> None:
    assert rules(errors.problem(exchange(500, b"Internal Server Error"))) == {"ERR-1"}


@pytest.mark.parametrize("raw", [b"", b"oops", b"[]", b'"x"'])
def test_problem_body_not_an_object_is_err1(raw: bytes) -> None:
    ex = exchange(404, raw, content_type="application/problem+json")
    assert rules(errors.problem(ex)) == {"ERR-1"}


@pytest.mark.parametrize("status", [400, "404", None])
def test_problem_status_member_differs_is_err1(status: Any) -> None:
    body = problem_body(404)
    if status is None:
        del body["status"]
    else:
        body["status"] = status
    ex = json_response(404, body, content_type="application/problem+json")
    assert rules(errors.problem(ex)) == {"ERR-1"}


@pytest.mark.parametrize("member", ["title", "detail", "code"])
@pytest.mark.parametrize("value", [None, "", 5], ids=["missing", "empty", "number"])
def test_problem_member_missing_or_bad_is_err1(member: str, value: Any) -> None:
    body = problem_body(404)
    if value is None:
        del body[member]
    else:
        body[member] = value
    ex = json_response(404, body, content_type="application/problem+json")
    found = errors.problem(ex)
    assert rules(found) == {"ERR-1"}
    assert len(found) == 1


@pytest.mark.parametrize(
    "ptype",
    [None, "", "not_found", "https://example.com/errors/x", "http://docs.flowyte.com/errors/x", 7],
)
def test_problem_bad_type_is_err1(ptype: Any) -> None:
    body = problem_body(404)
    if ptype is None:
        del body["type"]
    else:
        body["type"] = ptype
    ex = json_response(404, body, content_type="application/problem+json")
    assert rules(errors.problem(ex)) == {"ERR-1"}


def test_problem_reports_under_the_given_rule() -> None:
    ex = problem_response(401, content_type="application/json")
    assert rules(errors.problem(ex, rule="AUTH-1")) == {"AUTH-1"}


# -- ERR-2: validation_error -----------------------------------------------------------------


def validation(errs: Any, status: int = 400, code: str = "validation_error") -> Exchange:
    return problem_response(status, code, errors=errs, method="POST", path=MESSAGES_PATH)


def test_validation_error_correct_is_fine() -> None:
    ex = validation([{"field": "content", "message": "required"}])
    found = errors.validation_error(ex, ("content",))
    assert found == []
    assert dict(found.examined) == {("ERR-2", "all"): 1}
    assert not found.unexercised


@pytest.mark.parametrize(
    ("named", "want"),
    [
        ("content", "content"),
        ("body.content", "content"),
        ("/content", "content"),
        ("$.content", "content"),
        ("body/content", "content"),
        ("messages[0].role", "messages"),
        ("anything", ""),
    ],
)
def test_validation_error_field_naming_variants(named: str, want: str) -> None:
    ex = validation([{"field": named, "message": "bad"}])
    assert errors.validation_error(ex, (want,)) == []


def test_validation_error_several_fields() -> None:
    ex = validation([{"field": "model", "message": "m"}, {"field": "messages", "message": "m"}])
    assert errors.validation_error(ex, ("model", "messages")) == []
    assert rules(errors.validation_error(ex, ("model", "stream"))) == {"ERR-2"}


@pytest.mark.parametrize("status", [422, 500, 200, 404])
def test_validation_error_wrong_status_is_err2(status: int) -> None:
    ex = validation([{"field": "content", "message": "m"}], status=status)
    found = errors.validation_error(ex, ("content",))
    assert rules(found) == {"ERR-2"}
    assert levels(found, "ERR-2") == {"D"}


def test_validation_error_no_response_is_err2_without_evidence() -> None:
    found = errors.validation_error(no_response(), ("content",))
    assert rules(found) == {"ERR-2"}
    assert not found.examined


@pytest.mark.parametrize(
    "ex",
    [
        exchange(400, b"Bad Request", content_type="text/plain", method="POST"),
        json_response(
            400,
            problem_body(400, "validation_error", errors=[{"field": "content", "message": "m"}]),
            method="POST",
        ),  # application/json: the right members under the wrong media type
        exchange(400, b"[]", content_type="application/problem+json", method="POST"),
    ],
    ids=["text-plain", "json-content-type", "array"],
)
def test_validation_error_400_that_breaks_err1_is_not_judged(ex: Exchange) -> None:
    # the status was right; the body is ERR-1's failure, reported once by every_response
    assert rules(errors.every_response(ex)) == {"ERR-1"}
    found = errors.validation_error(ex, ("content",))
    assert found == []
    assert not found.examined
    assert found.unexercised == {
        ("ERR-2", "all"): f"not judged: see ERR-1 on POST {ex.url} (no problem object to read)"
    }


def test_validation_error_wrong_status_is_judged_whatever_the_body() -> None:
    ex = exchange(200, b"ok", content_type="text/plain", method="POST")
    found = errors.validation_error(ex, ("content",))
    assert rules(found) == {"ERR-2"}
    assert dict(found.examined) == {("ERR-2", "all"): 1}


def test_validation_error_wrong_code_is_err2() -> None:
    ex = validation([{"field": "content", "message": "m"}], code="bad_request")
    assert rules(errors.validation_error(ex, ("content",))) == {"ERR-2"}


@pytest.mark.parametrize("errs", [None, [], "content", {"content": "required"}])
def test_validation_error_without_errors_array_is_err2(errs: Any) -> None:
    ex = problem_response(400, "validation_error", method="POST", path=MESSAGES_PATH)
    if errs is not None:
        ex = validation(errs)
    assert rules(errors.validation_error(ex, ("content",))) == {"ERR-2"}


@pytest.mark.parametrize(
    "item",
    [{"field": "content"}, {"message": "m"}, {"field": 1, "message": "m"}, "content"],
)
def test_validation_error_bad_item_is_err2(item: Any) -> None:
    ex = validation([item, {"field": "content", "message": "m"}])
    assert rules(errors.validation_error(ex, ("content",))) == {"ERR-2"}


@pytest.mark.parametrize("named", ["stream", "contents", "xcontent", "content_type"])
def test_validation_error_field_not_named_is_err2(named: str) -> None:
    ex = validation([{"field": named, "message": "m"}])
    assert rules(errors.validation_error(ex, ("content",))) == {"ERR-2"}


# -- ERR-4: no_server_error ------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_5xx_is_err4(status: int) -> None:
    found = errors.no_server_error(problem_response(status, "internal"))
    assert rules(found) == {"ERR-4"}
    assert levels(found, "ERR-4") == {"C"}


@pytest.mark.parametrize("status", [200, 201, 400, 404, 429, 499])
def test_non_5xx_is_not_err4(status: int) -> None:
    assert errors.no_server_error(exchange(status)) == []


def test_no_response_is_not_err4() -> None:
    assert errors.no_server_error(no_response()) == []


# -- ERR-3: retry_after ----------------------------------------------------------------------


def test_429_with_retry_after_is_fine() -> None:
    ex = problem_response(429, "rate_limited", headers={"Retry-After": "3"})
    assert errors.retry_after(ex) == []


def test_429_without_retry_after_is_err3() -> None:
    ex = problem_response(429, "rate_limited", headers={"RateLimit-Reset": "3"})
    found = errors.retry_after(ex)
    assert rules(found) == {"ERR-3"}
    assert levels(found, "ERR-3") == {"D"}


@pytest.mark.parametrize("status", [200, 400, 503])
def test_retry_after_only_applies_to_429(status: int) -> None:
    assert errors.retry_after(exchange(status)) == []


# -- ENV-1: envelope -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"success": True, "data": session()},
        {"success": True, "data": None},
        {"success": True, "data": [], "message": "ok", "errors": []},
        {"success": True, "data": {}, "extra": 1},
    ],
)
def test_envelope_correct_is_fine(body: dict[str, Any]) -> None:
    assert errors.envelope(json_response(200, body)) == []


def test_envelope_201_with_charset_is_fine() -> None:
    ex = json_response(
        201, {"success": True, "data": session()}, content_type="application/json; charset=utf-8"
    )
    assert errors.envelope(ex) == []


@pytest.mark.parametrize(
    "body",
    [
        session(),
        {"success": False, "data": session()},
        {"success": "true", "data": session()},
        {"data": session()},
        {"success": True},
        [session()],
        None,
    ],
    ids=["bare", "false", "string-true", "no-success", "no-data", "array", "null"],
)
def test_envelope_missing_is_env1(body: Any) -> None:
    found = errors.envelope(json_response(200, body))
    assert rules(found) == {"ENV-1"}
    assert levels(found, "ENV-1") == {"D"}


def test_envelope_unparseable_json_is_env1() -> None:
    assert rules(errors.envelope(exchange(200, b"{", content_type="application/json"))) == {"ENV-1"}


@pytest.mark.parametrize(
    ("member", "value"), [("message", 5), ("message", None), ("errors", "x"), ("errors", {})]
)
def test_envelope_bad_optional_member_is_env1(member: str, value: Any) -> None:
    body = {"success": True, "data": session(), member: value}
    assert rules(errors.envelope(json_response(200, body))) == {"ENV-1"}


@pytest.mark.parametrize(
    "ex",
    [
        problem_response(404),
        json_response(400, {"x": 1}),
        exchange(200, b"event: done\n\n", content_type="text/event-stream"),
        exchange(204),
        no_response(),
    ],
    ids=["problem", "4xx-json", "event-stream", "204", "no-response"],
)
def test_envelope_only_applies_to_2xx_json(ex: Exchange) -> None:
    assert errors.envelope(ex) == []


# -- OAI-7: openai_error ---------------------------------------------------------------------


def oai_problem(status: int = 400, **members: Any) -> Exchange:
    return problem_response(
        status, "model_not_found", method="POST", path=COMPLETIONS_PATH, **members
    )


def test_openai_error_correct_is_fine() -> None:
    err = {"message": "no such model", "type": "invalid_request_error", "code": "model_not_found"}
    assert errors.openai_error(oai_problem(error=err)) == []
    err["code"] = None  # OpenAI sends code null at times: present is enough
    assert errors.openai_error(oai_problem(error=err)) == []


@pytest.mark.parametrize(
    "err",
    [
        None,
        "no such model",
        {"message": "m", "type": "t"},
        {"message": "m", "code": "c"},
        {"type": "t", "code": "c"},
        {"message": 5, "type": "t", "code": "c"},
    ],
    ids=["absent", "string", "no-code", "no-type", "no-message", "message-number"],
)
def test_openai_error_missing_or_bad_is_oai7(err: Any) -> None:
    ex = oai_problem() if err is None else oai_problem(error=err)
    found = errors.openai_error(ex)
    assert rules(found) == {"OAI-7"}
    assert levels(found, "OAI-7") == {"C"}


def test_openai_error_on_non_json_is_oai7() -> None:
    ex = exchange(500, b"oops", content_type="text/plain", method="POST", path=COMPLETIONS_PATH)
    assert rules(errors.openai_error(ex)) == {"OAI-7"}


@pytest.mark.parametrize("ex", [json_response(200, completion_body()), no_response()])
def test_openai_error_only_applies_to_errors(ex: Exchange) -> None:
    assert errors.openai_error(ex) == []


# -- every_response: what it examined ------------------------------------------------------

OAI_ERR = {"message": "m", "type": "invalid_request_error", "code": "model_not_found"}


def examined(out: Any) -> dict[str, int]:
    """The evidence of an outcome per rule (each of these rules has one clause)."""
    return {rule: n for (rule, _), n in out.examined.items()}


@pytest.mark.parametrize(
    ("ex", "applied"),
    [
        (
            enveloped(session(), status=201, method="POST", path="/chat/sessions"),
            ["ERR-4", "ENV-1"],
        ),
        (enveloped(session()), ["ERR-4", "ENV-1"]),
        (problem_response(404), ["ERR-4", "ERR-1"]),
        (
            problem_response(429, "rate_limited", headers={"Retry-After": "1"}),
            ["ERR-4", "ERR-1", "ERR-3"],
        ),
        (session_stream(), ["ERR-4"]),
        (json_response(200, completion_body(), method="POST", path=COMPLETIONS_PATH), ["ERR-4"]),
        (completion_stream(), ["ERR-4"]),
        (oai_problem(error=OAI_ERR), ["ERR-4", "ERR-1", "OAI-7"]),
        (
            problem_response(
                503, "unavailable", method="POST", path=COMPLETIONS_PATH + "?x=1", error=OAI_ERR
            ),
            ["ERR-4", "ERR-1", "OAI-7"],
        ),
        (exchange(204, method="POST", path="/chat/sessions/ses_1/end"), ["ERR-4"]),
        (exchange(302), ["ERR-4"]),
    ],
    ids=[
        "create-201",
        "get-200",
        "problem-404",
        "429",
        "session-stream",
        "completion",
        "completion-stream",
        "completion-400",
        "completion-503-query",
        "204",
        "302",
    ],
)
def test_every_response_correct_and_what_it_examined(ex: Exchange, applied: list[str]) -> None:
    found = errors.every_response(ex)
    if ex.status is not None and ex.status >= 500:
        assert rules(found) == {"ERR-4"}
    else:
        assert found == []
    assert examined(found) == dict.fromkeys(applied, 1)
    assert not found.unexercised


def test_every_response_429_is_the_evidence_of_err3s_clause() -> None:
    ok = errors.every_response(problem_response(429, "rate_limited", headers={"Retry-After": "1"}))
    assert ok.examined[("ERR-3", "429")] == 1
    bad = errors.every_response(problem_response(429, "rate_limited"))
    assert bad.examined[("ERR-3", "429")] == 1
    assert [f.clause_id for f in bad if f.rule == "ERR-3"] == ["429"]
    for status in (200, 400, 503):  # no 429 seen: ERR-3 has no evidence at all
        assert not any(r == "ERR-3" for r, _ in errors.every_response(exchange(status)).examined)


def test_every_response_no_response_examines_nothing() -> None:
    found = errors.every_response(no_response())
    assert found == []
    assert not found.examined
    assert not found.unexercised


def test_every_response_204_is_not_env1() -> None:
    # a 204 has no body to envelope: ENV-1 is neither checked nor counted as exercised
    ex = exchange(204, method="POST", path="/chat/sessions/ses_1/end")
    found = errors.every_response(ex)
    assert found == []
    assert ("ENV-1", "all") not in found.examined


def test_every_response_session_2xx_not_enveloped_is_env1() -> None:
    found = errors.every_response(json_response(200, session()))
    assert rules(found) == {"ENV-1"}
    assert examined(found) == {"ERR-4": 1, "ENV-1": 1}


def test_every_response_streamed_request_answered_with_json_is_not_env1() -> None:
    # its shape is SSE-1's business: ENV-1 is neither checked nor counted as exercised
    ex = json_response(200, {"messages": []}, method="POST", path=MESSAGES_PATH)
    ex.request_body = b'{"content": "Hello", "stream": true}'
    found = errors.every_response(ex)
    assert found == []
    assert examined(found) == {"ERR-4": 1}
    ex.request_body = b'{"content": "Hello", "stream": false}'
    found = errors.every_response(ex)
    assert rules(found) == {"ENV-1"}
    assert examined(found) == {"ERR-4": 1, "ENV-1": 1}


def test_every_response_completion_error_not_a_problem_is_err1_and_oai7_not_judged() -> None:
    # one defect (no problem+json, no OpenAI member) fails ERR-1 once, not OAI-7 again
    ex = exchange(500, b"oops", content_type="text/plain", method="POST", path=COMPLETIONS_PATH)
    found = errors.every_response(ex)
    assert rules(found) == {"ERR-4", "ERR-1"}
    assert examined(found) == {"ERR-4": 1, "ERR-1": 1}
    assert found.unexercised == {("OAI-7", "all"): "not judged: see ERR-1 on this response"}


def test_every_response_completion_error_with_openai_member_but_plain_json_judges_oai7() -> None:
    # ERR-1 fails (application/json), but the OpenAI member is there and readable: OAI-7 holds
    ex = json_response(400, {"error": OAI_ERR}, method="POST", path=COMPLETIONS_PATH)
    found = errors.every_response(ex)
    assert rules(found) == {"ERR-1"}
    assert examined(found) == {"ERR-4": 1, "ERR-1": 1, "OAI-7": 1}
    assert not found.unexercised


def test_every_response_completion_problem_without_openai_member_is_oai7() -> None:
    found = errors.every_response(oai_problem())
    assert rules(found) == {"OAI-7"}
    assert examined(found) == {"ERR-4": 1, "ERR-1": 1, "OAI-7": 1}


@pytest.mark.parametrize(
    ("request_body", "asked"),
    [
        (b'{"content": "x", "stream": true}', True),
        (b'{"content": "x", "stream": false}', False),
        (b'{"content": "x", "stream": "true"}', False),
        (b'{"content": "x"}', False),
        (b"{not json", False),
        (b"[true]", False),
        (None, False),
    ],
)
def test_asked_stream(request_body: bytes | None, asked: bool) -> None:
    ex = exchange(200, method="POST", path=MESSAGES_PATH)
    ex.request_body = request_body
    assert errors.asked_stream(ex) is asked


def test_every_response_completion_is_not_held_to_the_envelope() -> None:
    ex = json_response(200, completion_body(), method="POST", path=COMPLETIONS_PATH)
    assert errors.every_response(ex) == []


def test_every_response_session_stream_is_not_held_to_the_envelope() -> None:
    assert errors.every_response(session_stream()) == []


def test_every_response_error_not_problem_is_err1() -> None:
    ex = json_response(404, {"error": "not found"})
    assert rules(errors.every_response(ex)) == {"ERR-1"}


def test_every_response_5xx_is_err4_and_err1() -> None:
    ex = exchange(502, b"<html>Bad Gateway</html>", content_type="text/html")
    assert rules(errors.every_response(ex)) == {"ERR-4", "ERR-1"}


def test_every_response_429_without_retry_after_is_err3() -> None:
    assert rules(errors.every_response(problem_response(429, "rate_limited"))) == {"ERR-3"}


def test_every_response_session_error_is_not_held_to_oai7() -> None:
    assert errors.every_response(problem_response(404)) == []


def test_is_session_api_and_is_completions() -> None:
    assert errors.is_session_api(enveloped(session()))
    assert not errors.is_session_api(json_response(200, {}, path=COMPLETIONS_PATH))
    assert errors.is_completions(json_response(200, {}, path=COMPLETIONS_PATH))
    assert errors.is_completions(json_response(200, {}, path=COMPLETIONS_PATH + "?a=b"))
    assert not errors.is_completions(enveloped(session()))


@pytest.mark.parametrize("content_type", ["text/plain", None])
def test_env1_claimed_exercised_only_when_checked(content_type: str | None) -> None:
    ex = exchange(200, b'{"id": "ses_1"}', content_type=content_type)
    found = errors.every_response(ex)
    assert rules(found) == {"ENV-1"}
    assert examined(found) == {"ERR-4": 1, "ENV-1": 1}


def graded_err3(exchanges: list[Exchange]) -> Any:
    out = Outcome()
    for ex in exchanges:
        out += errors.every_response(ex)
    vs = grade_rules(out, out.examined, {}, True, unexercised=out.unexercised)
    return next(v for v in vs if v.id == "ERR-3")


def test_err3_is_exercised_only_when_a_429_was_seen() -> None:
    burst = [enveloped(session()) for _ in range(5)]
    v = graded_err3(burst)
    assert v.verdict == "SKIP"
    assert [(c.id, c.verdict, c.evidence) for c in v.clauses] == [("429", "SKIP", 0)]
    limited = problem_response(429, "rate_limited", headers={"Retry-After": "1"})
    v = graded_err3([*burst, limited, limited])
    assert (v.verdict, v.reason) == ("PASS", "")
    assert [(c.id, c.verdict, c.evidence) for c in v.clauses] == [("429", "PASS", 2)]
    v = graded_err3([*burst, limited, problem_response(429, "rate_limited")])
    assert v.verdict == "FAIL"
    assert [(c.id, c.verdict, c.evidence) for c in v.clauses] == [("429", "FAIL", 2)]
