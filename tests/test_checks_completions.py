"""Unit tests of chatconform.checks.completions (OAI-1, OAI-3..6) on hand-built replies: each check
fails on a broken observation, records what it examined, and nothing when there was nothing to examine."""

from __future__ import annotations

from typing import Any

import pytest

from chatconform.checks import completions
from chatconform.record import Exchange
from chatconform.sdk import SdkCall
from chatconform.verdicts import Outcome

from observations import (
    COMPLETIONS_PATH,
    DELTAS,
    MODEL,
    REPLY_TEXT,
    completion_body,
    completion_chunk,
    completion_chunks,
    completion_stream,
    exchange,
    json_response,
    levels,
    problem_body,
    rules,
    split_every,
    sse_frame,
    stream_response,
)


def reply(body: Any, status: int = 200, **kw: Any) -> Exchange:
    return json_response(status, body, method="POST", path=COMPLETIONS_PATH, **kw)


# -- OAI-3: completion -----------------------------------------------------------------------


def test_completion_correct_returns_its_text() -> None:
    assert completions.completion(reply(completion_body()), MODEL) == ([], REPLY_TEXT)


def test_completion_without_usage_and_with_extra_fields_is_fine() -> None:
    body = completion_body(system_fingerprint="fp_1")
    del body["usage"]
    body["choices"][0]["logprobs"] = None
    assert completions.completion(reply(body), MODEL) == ([], REPLY_TEXT)


def test_completion_null_content_returns_no_text() -> None:
    found, text = completions.completion(reply(completion_body(content=None)), MODEL)
    assert found == []
    assert text is None


@pytest.mark.parametrize("status", [400, 404, 500, 201])
def test_completion_non_200_is_oai3_d(status: int) -> None:
    found, text = completions.completion(reply(problem_body(status, "x"), status=status), MODEL)
    assert rules(found) == {"OAI-3"}
    assert levels(found, "OAI-3") == {"D"}
    assert text is None


def test_completion_no_response_is_oai3() -> None:
    found, _ = completions.completion(exchange(None, error="timeout"), MODEL)
    assert rules(found) == {"OAI-3"}


@pytest.mark.parametrize("raw", [b"Hi there!", b"", b"[1, 2]", b'"text"'])
def test_completion_body_not_an_object_is_oai3(raw: bytes) -> None:
    ex = exchange(200, raw, content_type="application/json", method="POST", path=COMPLETIONS_PATH)
    found, text = completions.completion(ex, MODEL)
    assert rules(found) == {"OAI-3"}
    assert text is None


def test_completion_enveloped_is_env1() -> None:
    found, text = completions.completion(reply({"success": True, "data": completion_body()}), MODEL)
    assert rules(found) == {"ENV-1"}
    assert levels(found, "ENV-1") == {"D"}
    assert text is None


@pytest.mark.parametrize("field", ["id", "object", "created", "model", "choices"])
def test_completion_missing_field_is_oai3_d(field: str) -> None:
    body = completion_body()
    del body[field]
    found, _ = completions.completion(reply(body), MODEL)
    assert "OAI-3" in rules(found)
    assert "D" in levels(found, "OAI-3")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("object",), "chat.completion.chunk"),
        (("created",), "2025-01-01"),
        (("choices",), []),
        (("choices", 0, "message", "role"), "user"),
        (("choices", 0, "index"), -1),
        (("usage", "total_tokens"), "6"),
    ],
)
def test_completion_wrong_field_is_oai3_d(path: tuple[Any, ...], value: Any) -> None:
    body = completion_body()
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    found, _ = completions.completion(reply(body), MODEL)
    assert "D" in levels(found, "OAI-3")


@pytest.mark.parametrize("reason", ["length", "content_filter", None])
def test_completion_finish_reason_other_than_stop_is_oai3_c(reason: str | None) -> None:
    body = completion_body()
    body["choices"][0]["finish_reason"] = reason
    found, text = completions.completion(reply(body), MODEL)
    assert rules(found) == {"OAI-3"}
    assert levels(found, "OAI-3") == {"C"}
    assert text == REPLY_TEXT


def test_completion_other_model_is_oai3_c() -> None:
    found, _ = completions.completion(reply(completion_body(model="gpt-4o")), MODEL)
    assert rules(found) == {"OAI-3"}
    assert levels(found, "OAI-3") == {"C"}


# -- OAI-4: completion_stream ----------------------------------------------------------------


def test_completion_stream_correct_returns_concatenated_text() -> None:
    assert completions.completion_stream(completion_stream(), MODEL) == ([], REPLY_TEXT)


def test_completion_stream_returned_text_is_the_concatenated_content() -> None:
    pieces = ("a", "", "bc", " ", "😀")
    found, text = completions.completion_stream(completion_stream(completion_chunks(pieces)), MODEL)
    assert found == []
    assert text == "abc 😀"


def test_completion_stream_finish_on_the_last_content_chunk_is_fine() -> None:
    chunks = [
        completion_chunk(p, role="assistant" if i == 0 else None) for i, p in enumerate(DELTAS)
    ]
    chunks[-1]["choices"][0]["finish_reason"] = "stop"
    assert completions.completion_stream(completion_stream(chunks), MODEL) == ([], REPLY_TEXT)


@pytest.mark.parametrize("size", [1, 3, 1000])
def test_completion_stream_any_read_boundaries(size: int) -> None:
    raw = b"".join(sse_frame(c) for c in completion_chunks()) + b"data: [DONE]\n\n"
    ex = stream_response(split_every(raw, size), path=COMPLETIONS_PATH)
    assert completions.completion_stream(ex, MODEL) == ([], REPLY_TEXT)


def test_completion_stream_crlf_comments_and_no_space_are_fine() -> None:
    reads = [b": hello\r\n\r\n"]
    reads += [sse_frame(c, eol="\r\n", space=False) for c in completion_chunks()]
    reads.append(b"data:[DONE]\r\n\r\n")
    ex = stream_response(reads, path=COMPLETIONS_PATH)
    assert completions.completion_stream(ex, MODEL) == ([], REPLY_TEXT)


@pytest.mark.parametrize(
    "ex",
    [
        completion_stream(content_type="application/json"),
        completion_stream(status=400),
        reply(problem_body(400, "model_not_found"), status=400),
        exchange(200, content_type="text/event-stream", method="POST", path=COMPLETIONS_PATH),
        exchange(None, error="timeout"),
    ],
    ids=["json-content-type", "status-400", "problem-400", "no-stream-record", "no-response"],
)
def test_completion_stream_not_a_stream_is_oai4_d(ex: Exchange) -> None:
    found, text = completions.completion_stream(ex, MODEL)
    assert rules(found) == {"OAI-4"}
    assert levels(found, "OAI-4") == {"D"}
    assert text is None


def test_completion_stream_without_done_is_oai4_d() -> None:
    found, _ = completions.completion_stream(completion_stream(done=False), MODEL)
    assert rules(found) == {"OAI-4"}
    assert levels(found, "OAI-4") == {"D"}


def test_completion_stream_done_without_blank_line_is_oai4_d() -> None:
    found, _ = completions.completion_stream(
        completion_stream(done=False, tail=[b"data: [DONE]"]), MODEL
    )
    assert levels(found, "OAI-4") == {"D"}


def test_completion_stream_event_lines_are_oai4_c() -> None:
    reads = [sse_frame(c, event="chunk") for c in completion_chunks()] + [b"data: [DONE]\n\n"]
    found, text = completions.completion_stream(
        stream_response(reads, path=COMPLETIONS_PATH), MODEL
    )
    assert rules(found) == {"OAI-4"}
    assert levels(found, "OAI-4") == {"C"}
    assert text == REPLY_TEXT


def test_completion_stream_chunk_after_done_is_oai4_c() -> None:
    ex = completion_stream(tail=[sse_frame(completion_chunk("late"))])
    found, _ = completions.completion_stream(ex, MODEL)
    assert "OAI-4" in rules(found)
    assert "C" in levels(found, "OAI-4")
    assert any("after [DONE]" in f.got for f in found)


def test_completion_stream_two_dones_is_oai4_c() -> None:
    found, _ = completions.completion_stream(completion_stream(tail=[b"data: [DONE]\n\n"]), MODEL)
    assert rules(found) == {"OAI-4"}
    assert levels(found, "OAI-4") == {"C"}


def test_completion_stream_partial_frame_after_done_is_oai4_c() -> None:
    found, _ = completions.completion_stream(completion_stream(tail=[b'data: {"id"']), MODEL)
    assert rules(found) == {"OAI-4"}
    assert levels(found, "OAI-4") == {"C"}


def test_completion_stream_two_finish_reasons_is_oai4_c() -> None:
    chunks = completion_chunks()
    chunks[1]["choices"][0]["finish_reason"] = "stop"
    found, _ = completions.completion_stream(completion_stream(chunks), MODEL)
    assert rules(found) == {"OAI-4"}
    assert levels(found, "OAI-4") == {"C"}


def test_completion_stream_no_finish_reason_is_oai4_c() -> None:
    chunks = completion_chunks()[:-1]
    found, _ = completions.completion_stream(completion_stream(chunks), MODEL)
    assert rules(found) == {"OAI-4"}
    assert levels(found, "OAI-4") == {"C"}


def test_completion_stream_finish_reason_not_last_is_oai4_c() -> None:
    chunks = completion_chunks()
    chunks[-1]["choices"][0]["finish_reason"] = None
    chunks[1]["choices"][0]["finish_reason"] = "stop"
    found, _ = completions.completion_stream(completion_stream(chunks), MODEL)
    assert rules(found) == {"OAI-4"}
    assert any("last chunk" in f.expected for f in found)


def test_completion_stream_finish_reason_length_is_oai4_c() -> None:
    chunks = completion_chunks()
    chunks[-1]["choices"][0]["finish_reason"] = "length"
    found, _ = completions.completion_stream(completion_stream(chunks), MODEL)
    assert rules(found) == {"OAI-4"}
    assert levels(found, "OAI-4") == {"C"}


@pytest.mark.parametrize(
    ("field", "value"), [("id", "chatcmpl-2"), ("created", 1), ("model", "other")]
)
def test_completion_stream_mismatched_ids_is_oai4_c(field: str, value: Any) -> None:
    chunks = completion_chunks()
    chunks[2][field] = value
    found, _ = completions.completion_stream(completion_stream(chunks), MODEL)
    assert rules(found) == {"OAI-4"}
    assert levels(found, "OAI-4") == {"C"}


def test_completion_stream_first_delta_without_role_is_oai4_c() -> None:
    chunks = completion_chunks()
    del chunks[0]["choices"][0]["delta"]["role"]
    found, text = completions.completion_stream(completion_stream(chunks), MODEL)
    assert rules(found) == {"OAI-4"}
    assert levels(found, "OAI-4") == {"C"}
    assert text == REPLY_TEXT


def test_completion_stream_non_json_chunk_is_oai4_d() -> None:
    chunks: list[Any] = completion_chunks()
    chunks.insert(1, "Hi there")
    found, _ = completions.completion_stream(completion_stream(chunks), MODEL)
    assert "OAI-4" in rules(found)
    assert "D" in levels(found, "OAI-4")


@pytest.mark.parametrize(
    ("field", "value"),
    [("object", "chat.completion"), ("choices", "x"), ("id", ""), ("created", -1)],
)
def test_completion_stream_invalid_chunk_is_oai4_d(field: str, value: Any) -> None:
    chunks = completion_chunks()
    chunks[1][field] = value
    found, _ = completions.completion_stream(completion_stream(chunks), MODEL)
    assert "D" in levels(found, "OAI-4")


def test_completion_stream_chunk_missing_delta_is_oai4_d() -> None:
    chunks = completion_chunks()
    del chunks[1]["choices"][0]["delta"]
    found, _ = completions.completion_stream(completion_stream(chunks), MODEL)
    assert "D" in levels(found, "OAI-4")


@pytest.mark.parametrize("ended_by", ["timeout", "byte-cap", "transport-error"])
def test_completion_stream_not_closed_by_server_is_oai4_d(ended_by: str) -> None:
    found, _ = completions.completion_stream(completion_stream(ended_by=ended_by), MODEL)
    assert rules(found) == {"OAI-4"}
    assert levels(found, "OAI-4") == {"D"}


def test_completion_stream_with_no_chunks_is_oai4() -> None:
    found, _ = completions.completion_stream(completion_stream([]), MODEL)
    assert "OAI-4" in rules(found)


# -- chunks ----------------------------------------------------------------------------------


def test_chunks_parses_json_done_and_garbage() -> None:
    ex = completion_stream([completion_chunk("a"), "garbage"])
    cs = completions.chunks(ex)
    assert [raw for raw, _ in cs][1:] == ["garbage", "[DONE]"]
    assert cs[0][1] == completion_chunk("a")
    assert cs[1][1] is None
    assert cs[2][1] is None


# -- OAI-6: same_text ----------------------------------------------------------------------


def test_same_text_equal_is_fine_and_examined() -> None:
    out = completions.same_text("OAI-6", "plain", "abc", "streamed", "abc")
    assert out == []
    assert examined(out) == {("OAI-6", "all"): 1}


@pytest.mark.parametrize(("a", "b"), [("abc", "abd"), ("", " "), ("abc", "abc ")])
def test_same_text_different_is_a_finding(a: str, b: str) -> None:
    out = completions.same_text("OAI-6", "plain", a, "streamed", b)
    assert rules(out) == {"OAI-6"}
    assert examined(out) == {("OAI-6", "all"): 1}


@pytest.mark.parametrize(("a", "b"), [("abc", None), (None, "abc"), (None, None)])
def test_same_text_missing_text_is_a_finding_and_not_a_comparison(
    a: str | None, b: str | None
) -> None:
    out = completions.same_text("OAI-6", "plain", a, "streamed", b)
    assert rules(out) == {"OAI-6"}
    assert examined(out) == {}


# -- evidence: what each check examined ------------------------------------------------------


def examined(out: Outcome) -> dict[tuple[str, str], int]:
    return dict(out.examined)


def test_completion_examines_oai3_once_per_response() -> None:
    found, _ = completions.completion(reply(completion_body()), MODEL)
    assert examined(found) == {("OAI-3", "all"): 1}


def test_completion_of_an_error_examines_oai3_and_fails_it() -> None:
    found, _ = completions.completion(reply(problem_body(500, "x"), status=500), MODEL)
    assert rules(found) == {"OAI-3"}
    assert examined(found) == {("OAI-3", "all"): 1}


def test_completion_without_a_response_examines_nothing() -> None:
    found, _ = completions.completion(exchange(None, error="timeout"), MODEL)
    assert rules(found) == {"OAI-3"}  # the missing reply is still the target's failure
    assert examined(found) == {}


def test_completion_enveloped_leaves_oai3_not_judged() -> None:
    found, _ = completions.completion(reply({"success": True, "data": completion_body()}), MODEL)
    assert rules(found) == {"ENV-1"}
    assert examined(found) == {}
    assert "see ENV-1" in found.unexercised[("OAI-3", "all")]


def test_completion_stream_examines_oai4_once_per_stream() -> None:
    found, _ = completions.completion_stream(completion_stream(), MODEL)
    assert examined(found) == {("OAI-4", "all"): 1}


def test_completion_stream_of_a_json_reply_examines_and_fails_oai4() -> None:
    found, _ = completions.completion_stream(reply(completion_body()), MODEL)
    assert rules(found) == {"OAI-4"}
    assert examined(found) == {("OAI-4", "all"): 1}


def test_completion_stream_without_a_response_examines_nothing() -> None:
    found, _ = completions.completion_stream(exchange(None, error="timeout"), MODEL)
    assert rules(found) == {"OAI-4"}
    assert examined(found) == {}


def test_completion_stream_text_stops_at_done() -> None:
    ex = completion_stream(tail=[sse_frame(completion_chunk("late"))])
    found, text = completions.completion_stream(ex, MODEL)
    assert text == REPLY_TEXT  # what an OpenAI client reads; the late chunk is OAI-4's finding
    assert any("after [DONE]" in f.got for f in found)


def test_request_taken_200_is_oai1_examined_clean() -> None:
    out = completions.request_taken(reply(completion_body()))
    assert out == []
    assert examined(out) == {("OAI-1", "all"): 1}


@pytest.mark.parametrize("status", [400, 422, 500])
def test_request_taken_rejected_is_oai1(status: int) -> None:
    out = completions.request_taken(reply(problem_body(status, "x"), status=status))
    assert rules(out) == {"OAI-1"}
    assert examined(out) == {("OAI-1", "all"): 1}


def test_request_taken_without_a_response_fails_and_examines_nothing() -> None:
    out = completions.request_taken(exchange(None, error="connect error"))
    assert rules(out) == {"OAI-1"}
    assert examined(out) == {}


# -- OAI-5: sdk_agrees (the SDK's text against chatconform's parse of the same bytes) ---------


def sdk_call(
    mode: str = "stream",
    text: str | None = REPLY_TEXT,
    error: str | None = None,
    ex: Exchange | None = None,
    language: str = "python",
) -> SdkCall:
    if ex is None:
        ex = completion_stream() if mode == "stream" else reply(completion_body())
    return SdkCall(language, mode, text, error, ex)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["plain", "stream"])
@pytest.mark.parametrize("language", ["python", "node"])
def test_sdk_agrees_same_text_is_clean_and_examined(mode: str, language: str) -> None:
    out = completions.sdk_agrees(sdk_call(mode, language=language), MODEL)
    assert out == []
    assert examined(out)[("OAI-5", f"{language}-{mode}")] == 1
    bytes_rule = "OAI-4" if mode == "stream" else "OAI-3"
    assert examined(out)[(bytes_rule, "all")] == 1  # the copy is judged as any response


@pytest.mark.parametrize("mode", ["plain", "stream"])
def test_sdk_agrees_other_text_fails_its_clause(mode: str) -> None:
    out = completions.sdk_agrees(sdk_call(mode, text=REPLY_TEXT + "!"), MODEL)
    assert rules(out) == {"OAI-5"}
    assert {f.clause for f in out} == {f"python-{mode}"}
    assert levels(out, "OAI-5") == {"D"}
    assert examined(out)[("OAI-5", f"python-{mode}")] == 1


def test_sdk_agrees_sdk_error_on_good_bytes_fails() -> None:
    out = completions.sdk_agrees(sdk_call(text=None, error="APIError: boom"), MODEL)
    assert rules(out) == {"OAI-5"}
    assert out[0].got == "APIError: boom"
    assert out[0].kind == "target"


def test_sdk_agrees_bytes_breaking_oai4_leave_oai5_not_judged() -> None:
    """The SDK read a stream without [DONE] silently: OAI-4 is the failure, not OAI-5."""
    out = completions.sdk_agrees(sdk_call(ex=completion_stream(done=False)), MODEL)
    assert rules(out) == {"OAI-4"}
    assert ("OAI-5", "python-stream") not in out.examined
    assert "see OAI-4" in out.unexercised[("OAI-5", "python-stream")]


def test_sdk_agrees_json_for_a_stream_is_oai4_not_oai5() -> None:
    """A stream request answered with a JSON completion: the SDK hands back "" and no error."""
    out = completions.sdk_agrees(sdk_call(text="", ex=reply(completion_body())), MODEL)
    assert rules(out) == {"OAI-4"}
    assert ("OAI-5", "python-stream") in out.unexercised


def test_sdk_agrees_c_part_of_the_bytes_still_compares() -> None:
    reads = [sse_frame(c, event="chunk") for c in completion_chunks()] + [b"data: [DONE]\n\n"]
    ex = stream_response(reads, path=COMPLETIONS_PATH)
    out = completions.sdk_agrees(sdk_call(ex=ex, error="APIError: event chunk"), MODEL)
    assert rules(out) == {"OAI-4", "OAI-5"}
    assert levels(out, "OAI-4") == {"C"}


def test_sdk_agrees_no_response_fails_without_examining() -> None:
    out = completions.sdk_agrees(
        sdk_call(text=None, error="APIConnectionError", ex=exchange(None, error="refused")), MODEL
    )
    assert rules(out) == {"OAI-5"}
    assert out[0].kind == "target"
    assert examined(out) == {}


def test_sdk_agrees_not_sent_is_budget() -> None:
    ex = exchange(None, error="not sent: the run exceeded its 1 s budget")
    ex.not_sent = True
    out = completions.sdk_agrees(sdk_call(text=None, error="not sent", ex=ex), MODEL)
    assert [f.kind for f in out] == ["budget"]
    assert examined(out) == {}


def test_sdk_agrees_without_a_copy_is_a_harness_error() -> None:
    call = SdkCall("node", "plain", None, "the Node script failed", None)
    out = completions.sdk_agrees(call, MODEL)
    assert [(f.rule, f.kind, f.clause) for f in out] == [("OAI-5", "harness", "node-plain")]
    assert examined(out) == {}


def test_sdk_unavailable_names_both_clauses() -> None:
    out = completions.sdk_unavailable("node", "node is not installed")
    assert out == []
    assert examined(out) == {}
    assert set(out.unexercised) == {("OAI-5", "node-plain"), ("OAI-5", "node-stream")}
