"""Unit tests of chatconform.checks.streaming (SSE-1..8, MSG-5 deltas) on hand-built streams."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from chatconform.checks import streaming
from chatconform.record import Exchange
from chatconform.verdicts import Outcome, grade_rules

from observations import (
    ASSISTANT_ID,
    DELTAS,
    SESSION_ID,
    USER_TEXT,
    Frame,
    audit_event,
    delta,
    encode,
    evidence,
    exchange,
    json_response,
    levels,
    problem_body,
    rules,
    session_frames,
    session_stream,
    split_every,
    stream_response,
    turn_messages,
)


def check(ex: Exchange) -> Outcome:
    return streaming.session_stream(ex, SESSION_ID, USER_TEXT)


def renumber(frames: list[Frame]) -> list[Frame]:
    """Give the frames' AuditEvents seq 1..n, fresh ids and rising tsMs (after an edit)."""
    out: list[Frame] = []
    for i, (name, data) in enumerate(frames):
        data = copy.deepcopy(data)
        if isinstance(data, dict) and "seq" in data:
            data.update(seq=i + 1, id=f"evt_{i + 1}", tsMs=1_735_689_600_000 + 10 * (i + 1))
        out.append((name, data))
    return out


def raw_stream(frames: list[Frame] | None = None) -> bytes:
    return b"".join(encode(session_frames() if frames is None else frames))


# -- SSE-1 -----------------------------------------------------------------------------------


def test_is_stream_accepts_200_event_stream_with_parameters() -> None:
    ex = session_stream(content_type="Text/Event-Stream; charset=utf-8")
    assert streaming.is_stream(ex) == []
    assert check(ex) == []


@pytest.mark.parametrize(
    "ex",
    [
        session_stream(content_type="application/json"),
        session_stream(content_type="text/plain"),
        session_stream(status=201),
        json_response(409, problem_body(409, "session_busy"), method="POST"),
        exchange(200, b"", content_type="text/event-stream", method="POST"),  # no stream record
    ],
    ids=["json", "text-plain", "status-201", "problem-409", "no-stream-record"],
)
def test_session_stream_not_a_stream_is_sse1_only(ex: Exchange) -> None:
    found = check(ex)
    assert rules(found) == {"SSE-1"}
    assert levels(found, "SSE-1") == {"D"}
    assert rules(streaming.is_stream(ex)) == {"SSE-1"}
    # nothing of the stream's protocol was examined: SSE-2..7 earn no evidence here
    assert dict(found.examined) == {("SSE-1", "all"): 1}


def test_session_stream_without_any_response_is_sse5() -> None:
    # a transport failure: no stream to judge for SSE-1, but the reply never terminated
    ex = exchange(None, error="connect timeout", method="POST")
    found = check(ex)
    assert rules(found) == {"SSE-5"}
    assert levels(found, "SSE-5") == {"D"}
    assert "connect timeout" in found[0].got
    assert dict(found.examined) == {("SSE-5", "all"): 1}
    is_stream = streaming.is_stream(ex)
    assert is_stream == []
    assert not is_stream.examined


# -- a correct stream and its legitimate variations ------------------------------------------


def test_correct_stream_has_no_findings() -> None:
    assert check(session_stream()) == []


def test_correct_stream_evidence() -> None:
    # three deltas and done: what each rule examined, per clause
    found = check(session_stream())
    assert evidence(found) == {
        ("SSE-1", "all"),
        ("SSE-2", "all"),
        ("SSE-3", "all"),
        ("SSE-4", "delta"),
        ("SSE-5", "all"),
        ("SSE-6", "done"),
        ("SSE-7", "all"),
        ("MSG-5", "all"),
        ("MSG-3", "all"),  # the done frame's messages are Messages
    }
    assert found.examined[("SSE-3", "all")] == 3  # the three non-terminal frames, once each
    assert found.examined[("SSE-4", "delta")] == 3
    assert found.examined[("SSE-7", "all")] == 4  # the done frame is numbered too
    assert found.examined[("SSE-6", "done")] == 1
    assert not found.unexercised


def test_correct_stream_with_tool_call_kb_retrieval_and_unknown_types() -> None:
    kb = {
        "query": "q",
        "chunks": [{"id": "k1", "answer": "a", "similarity": 0.5, "sourceUrl": "https://x"}],
    }
    tool = {"toolCallId": "call_1", "name": "lookup", "arguments": {"q": 1}, "output": None}
    frames = session_frames(
        before_done=[
            ("tool_call", tool),
            ("kb_retrieval", kb),
            ("guardrail", {"action": "allow"}),
            ("latency", {"ms": 12}),
        ]
    )
    assert check(session_stream(frames)) == []


def test_extra_fields_are_tolerated() -> None:
    frames = session_frames()
    for _, data in frames:
        data["traceId"] = "t-1"
        data["somethingNew"] = {"x": [1, 2]}
        data["payload"]["alsoNew"] = True
    assert check(session_stream(frames)) == []


@pytest.mark.parametrize("eol", ["\r\n", "\r", "\n"], ids=["crlf", "cr", "lf"])
def test_line_endings_are_tolerated(eol: str) -> None:
    assert check(session_stream(eol=eol)) == []


def test_no_space_after_colon_is_tolerated() -> None:
    assert check(session_stream(space=False)) == []


def test_comments_and_keepalives_are_tolerated() -> None:
    reads = [b": keep-alive\n\n"]
    for frame in encode(session_frames()):
        reads += [b":ping\n", frame, b": keep-alive\n\n"]
    assert check(stream_response(reads)) == []


def test_json_split_over_data_lines_is_tolerated() -> None:
    reads = []
    for name, data in session_frames():
        lines = json.dumps(data, indent=1).split("\n")
        assert len(lines) > 3
        text = f"event: {name}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"
        reads.append(text.encode())
    assert check(stream_response(reads)) == []


def test_bom_id_and_retry_fields_are_tolerated() -> None:
    reads = [b"\xef\xbb\xbfretry: 3000\n\n"]
    for i, frame in enumerate(encode(session_frames())):
        reads.append(f"id: {i}\n".encode() + frame)
    assert check(stream_response(reads)) == []


@pytest.mark.parametrize("size", [1, 2, 7, 64, 100_000])
def test_any_read_boundaries_give_the_same_verdict(size: int) -> None:
    raw = raw_stream()
    assert check(stream_response(split_every(raw, size))) == []
    crlf = b"".join(encode(session_frames(), eol="\r\n"))
    assert check(stream_response(split_every(crlf, size))) == []


def test_bom_split_over_reads_is_tolerated() -> None:
    raw = b"\xef\xbb\xbf" + raw_stream()
    assert check(stream_response(split_every(raw, 1))) == []


def test_multibyte_utf8_split_over_reads_is_fine() -> None:
    deltas = ("héllo ", "wörld ", "😀")
    raw = raw_stream(session_frames(deltas))
    found = check(stream_response(split_every(raw, 1)))
    assert found == []


@pytest.mark.parametrize("tail", [b": bye\n\n", b": bye\n", b": bye", b"\n\n\n", b"retry: 10\n\n"])
def test_comments_and_blank_lines_after_done_are_tolerated(tail: bytes) -> None:
    assert check(stream_response([*encode(session_frames()), tail])) == []


def test_client_drop_after_done_is_not_a_finding() -> None:
    assert check(session_stream(ended_by="client-drop")) == []


# -- SSE-2 -----------------------------------------------------------------------------------


def test_invalid_utf8_is_sse2_d() -> None:
    reads = [b": caf\xe9 \xff\n", *encode(session_frames())]
    found = check(stream_response(reads))
    assert rules(found) == {"SSE-2"}
    assert levels(found, "SSE-2") == {"D"}
    assert rules(streaming.wire(stream_response(reads))) == {"SSE-2"}


def test_invalid_utf8_in_a_delta_is_sse2_and_msg5() -> None:
    frames = encode(session_frames())
    frames[0] = frames[0].replace(b'"Hi"', b'"H\xffi"')
    found = check(stream_response(frames))
    assert {"SSE-2", "MSG-5"} <= rules(found)


SSE5_AFTER_SSE2 = "not judged: see SSE-2 on this response (the final frame was not terminated)"


@pytest.mark.parametrize("cut", ["one-lf", "mid-line"])
def test_terminal_frame_without_blank_line_is_sse2_c_and_sse5_not_judged(cut: str) -> None:
    # one defect (the done frame is never dispatched) fails SSE-2 once, not SSE-5 (or SSE-6) again
    reads = encode(session_frames())
    if cut == "one-lf":
        reads[-1] = reads[-1].rstrip(b"\n") + b"\n"  # the done frame ends with one LF only
    else:
        reads[-1] = reads[-1][:-10]
    ex = stream_response(reads)
    assert streaming.pending_terminal(ex)
    found = check(ex)
    assert rules(found) == {"SSE-2"}
    assert levels(found, "SSE-2") == {"C"}
    assert ("SSE-5", "all") not in found.examined
    assert found.unexercised == {("SSE-5", "all"): SSE5_AFTER_SSE2}
    assert not any(rule == "SSE-6" for rule, _ in found.examined)


def test_non_terminal_frame_without_blank_line_is_still_sse5() -> None:
    # the stream stopped inside a delta: no terminal frame was even begun, SSE-5 is judged
    reads = encode(session_frames()[:-1])
    reads[-1] = reads[-1].rstrip(b"\n")
    ex = stream_response(reads)
    assert not streaming.pending_terminal(ex)
    found = check(ex)
    assert rules(found) == {"SSE-2", "SSE-5"}
    assert levels(found, "SSE-5") == {"D"}
    assert ("SSE-5", "all") in found.examined
    assert not found.unexercised


def test_wire_on_a_clean_stream_is_empty() -> None:
    assert streaming.wire(session_stream()) == []


# -- SSE-3 -----------------------------------------------------------------------------------


def test_event_name_differs_from_event_type_is_sse3() -> None:
    frames = session_frames(before_done=[("latency", {"ms": 1})])
    frames[3] = ("guardrail", frames[3][1])
    found = check(session_stream(frames))
    assert rules(found) == {"SSE-3"}
    assert levels(found, "SSE-3") == {"D"}


def test_delta_frame_named_message_is_sse3_only() -> None:
    # the reference server's fault "event-name-mismatch": the delta still counts by its eventType
    frames = session_frames()
    frames[1] = ("message", frames[1][1])
    ex = session_stream(frames)
    assert rules(check(ex)) == {"SSE-3"}
    assert len(streaming.content_deltas(ex)) == len(DELTAS)


def test_frame_without_event_line_is_sse3() -> None:
    frames = session_frames(before_done=[("latency", {"ms": 1})])
    frames[3] = (None, frames[3][1])
    found = check(session_stream(frames))
    assert rules(found) == {"SSE-3"}
    assert levels(found, "SSE-3") == {"D"}


def test_frame_with_non_json_data_is_sse3() -> None:
    frames = session_frames(before_done=[("latency", {"ms": 1})])
    frames[3] = ("latency", "not json {")
    frames = renumber(frames)
    found = check(session_stream(frames))
    assert "SSE-3" in rules(found)
    assert rules(found) <= {"SSE-3", "SSE-7"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("channel", "web"),
        ("channel", None),
        ("id", 7),
        ("seq", "1"),
        ("tsMs", "now"),
        ("payload", "x"),
        ("conversationId", None),
    ],
)
def test_audit_event_field_wrong_is_sse3(field: str, value: Any) -> None:
    frames = session_frames()
    if value is None:
        del frames[0][1][field]
    else:
        frames[0][1][field] = value
    found = check(session_stream(frames))
    assert "SSE-3" in rules(found)


def test_audit_events_direct() -> None:
    ex = session_stream()
    body = [(e, d) for e, d in streaming.frames(ex) if e.type != "done"]
    assert streaming.audit_events(ex, body, SESSION_ID) == []


# -- SSE-4 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("agent_message", {"messageId": ASSISTANT_ID, "delta": 5}),
        ("agent_message", {"messageId": ASSISTANT_ID}),
        ("agent_message", {"delta": ""}),
        ("tool_call", {"toolCallId": "c", "name": "n", "arguments": "not-an-object", "output": 1}),
        ("tool_call", {"toolCallId": "c", "name": "n", "arguments": {}}),
        ("kb_retrieval", {"query": "q"}),
        (
            "kb_retrieval",
            {
                "query": "q",
                "chunks": [{"id": "k", "answer": "a", "similarity": 1.5, "sourceUrl": "u"}],
            },
        ),
    ],
    ids=[
        "delta-not-string",
        "no-delta",
        "no-messageId",
        "tool-arguments",
        "tool-no-output",
        "kb-no-chunks",
        "kb-similarity",
    ],
)
def test_bad_payload_is_sse4_c(event_type: str, payload: dict[str, Any]) -> None:
    found = check(session_stream(session_frames(before_done=[(event_type, payload)])))
    assert rules(found) == {"SSE-4"}
    assert levels(found, "SSE-4") == {"C"}


def test_payloads_direct() -> None:
    ex = session_stream(
        session_frames(before_done=[("kb_retrieval", {"query": "q", "chunks": []})])
    )
    body = [(e, d) for e, d in streaming.frames(ex) if e.type != "done"]
    assert streaming.payloads(ex, body) == []
    ex = session_stream(session_frames(before_done=[("kb_retrieval", {"chunks": []})]))
    body = [(e, d) for e, d in streaming.frames(ex) if e.type != "done"]
    found = streaming.payloads(ex, body)
    assert rules(found) == {"SSE-4"}
    assert levels(found, "SSE-4") == {"C"}


def test_unknown_event_type_payload_is_not_checked() -> None:
    frames = session_frames(before_done=[("guardrail", {"anything": [1, "x", None]})])
    assert check(session_stream(frames)) == []


# -- SSE-5 -----------------------------------------------------------------------------------


def test_missing_done_is_sse5() -> None:
    found = check(session_stream(session_frames()[:-1]))
    assert rules(found) == {"SSE-5"}
    assert levels(found, "SSE-5") == {"D"}


def test_empty_stream_is_sse5() -> None:
    assert rules(check(stream_response([]))) == {"SSE-5"}


def test_frame_after_done_is_sse5() -> None:
    frames = session_frames()
    frames.append(("latency", audit_event(len(frames) + 1, "latency", {"ms": 1})))
    found = check(session_stream(frames))
    assert rules(found) == {"SSE-5"}


def test_delta_after_done_is_sse5() -> None:
    frames = session_frames()
    frames.append(("agent_message", audit_event(len(frames) + 1, "agent_message", delta("."))))
    assert "SSE-5" in rules(check(session_stream(frames)))


def test_two_dones_is_sse5() -> None:
    frames = session_frames()
    second = copy.deepcopy(frames[-1][1])
    second.update(seq=len(frames) + 1, id="evt_again")
    frames.append(("done", second))
    found = check(session_stream(frames))
    assert rules(found) == {"SSE-5"}


def test_done_then_error_is_sse5() -> None:
    frames = session_frames()
    err = {**audit_event(len(frames) + 1, "error", {}), **problem_body(500, "internal")}
    frames.append(("error", err))
    assert rules(check(session_stream(frames))) == {"SSE-5"}


def test_partial_frame_after_done_is_sse5_and_sse2() -> None:
    reads = [*encode(session_frames()), b'event: latency\ndata: {"seq": 5']
    found = check(stream_response(reads))
    assert rules(found) == {"SSE-2", "SSE-5"}


@pytest.mark.parametrize("ended_by", ["timeout", "byte-cap", "transport-error", "open"])
def test_response_left_open_after_done_is_sse5(ended_by: str) -> None:
    found = check(session_stream(ended_by=ended_by, error="read timeout"))
    assert rules(found) == {"SSE-5"}


def test_termination_direct() -> None:
    ex = session_stream()
    assert streaming.termination(ex, streaming.frames(ex)) == []


# -- SSE-6 -----------------------------------------------------------------------------------


def test_error_terminal_with_problem_is_fine() -> None:
    frames = session_frames()[:1]
    err = {**audit_event(2, "error", {}), **problem_body(500, "internal_error")}
    frames.append(("error", err))
    assert check(session_stream(frames)) == []


@pytest.mark.parametrize(
    "data", [{"detail": "boom"}, "oops", {"status": "500"}], ids=["no-status", "text", "str"]
)
def test_error_terminal_without_problem_is_sse6(data: Any) -> None:
    frames: list[Frame] = [*session_frames()[:1], ("error", data)]
    found = check(session_stream(frames))
    assert "SSE-6" in rules(found)
    assert rules(found) <= {"SSE-6"}


@pytest.mark.parametrize(
    "data",
    [{"status": 200}, {"status": 500}, {**problem_body(500, "internal"), "status": 302}],
    ids=["status-200-only", "status-only", "status-302"],
)
def test_error_terminal_not_a_full_problem_is_sse6(data: dict[str, Any]) -> None:
    frames: list[Frame] = [*session_frames()[:1], ("error", data)]
    assert "SSE-6" in rules(check(session_stream(frames)))


@pytest.mark.parametrize(
    "edit",
    ["no-messages", "empty-messages", "messages-not-list", "not-json"],
)
def test_done_without_messages_is_sse6(edit: str) -> None:
    frames = session_frames()
    done = frames[-1][1]
    if edit == "no-messages":
        del done["messages"]
    elif edit == "empty-messages":
        done["messages"] = []
    elif edit == "messages-not-list":
        done["messages"] = {"0": "x"}
    else:
        frames[-1] = ("done", "[done]")
    found = check(session_stream(frames))
    assert rules(found) == {"SSE-6"}


def test_done_messages_wrong_user_content_is_sse6() -> None:
    msgs = turn_messages(content="Something else")
    found = check(session_stream(session_frames(messages=msgs)))
    assert rules(found) == {"SSE-6"}


def test_done_messages_not_ending_with_assistant_is_sse6() -> None:
    msgs = turn_messages()
    msgs.append({**msgs[0], "id": "msg_u2", "role": "user"})
    found = check(session_stream(session_frames(messages=msgs)))
    assert "SSE-6" in rules(found)


def test_done_message_wrong_shape_is_msg3() -> None:
    msgs = turn_messages()
    msgs[1]["sessionId"] = "ses_other"
    found = check(session_stream(session_frames(messages=msgs)))
    assert rules(found) == {"MSG-3"}


# -- SSE-7 -----------------------------------------------------------------------------------


def test_seq_gap_is_sse7() -> None:
    frames = session_frames()
    for _, data in frames[1:]:
        data["seq"] += 1
    found = check(session_stream(frames))
    assert rules(found) == {"SSE-7"}
    assert levels(found, "SSE-7") == {"C"}


def test_seq_not_starting_at_one_is_sse7() -> None:
    frames = session_frames()
    for _, data in frames:
        data["seq"] -= 1
    # seq 0 breaks the AuditEvent minimum too
    assert "SSE-7" in rules(check(session_stream(frames)))
    frames = session_frames()
    for _, data in frames:
        data["seq"] += 1
    assert rules(check(session_stream(frames))) == {"SSE-7"}


def test_seq_repeated_is_sse7() -> None:
    frames = session_frames()
    frames[2][1]["seq"] = 2
    assert rules(check(session_stream(frames))) == {"SSE-7"}


def test_ts_decreasing_is_sse7() -> None:
    frames = session_frames()
    frames[2][1]["tsMs"] = frames[0][1]["tsMs"] - 1
    assert rules(check(session_stream(frames))) == {"SSE-7"}


def test_ts_equal_is_fine() -> None:
    frames = session_frames()
    for _, data in frames:
        data["tsMs"] = 1_735_689_600_000
    assert check(session_stream(frames)) == []


def test_conversation_id_wrong_is_sse7() -> None:
    frames = session_frames()
    frames[1][1]["conversationId"] = "ses_other"
    assert rules(check(session_stream(frames))) == {"SSE-7"}


def test_duplicate_frame_id_is_sse7() -> None:
    frames = session_frames()
    frames[2][1]["id"] = frames[0][1]["id"]
    assert rules(check(session_stream(frames))) == {"SSE-7"}


def test_order_direct() -> None:
    ex = session_stream()
    assert streaming.order(ex, streaming.frames(ex), SESSION_ID) == []
    assert rules(streaming.order(ex, streaming.frames(ex), "ses_other")) == {"SSE-7"}


def test_terminal_without_seq_is_not_numbered() -> None:
    frames = session_frames()
    done_data = {"messages": frames[-1][1]["messages"]}
    frames[-1] = ("done", done_data)
    assert check(session_stream(frames)) == []


def test_unhashable_frame_id_is_reported_not_a_crash() -> None:
    frames = session_frames()
    frames[0][1]["id"] = ["evt", 1]
    found = check(session_stream(frames))
    assert "SSE-3" in rules(found)


def test_unhashable_message_id_is_reported_not_a_crash() -> None:
    frames = session_frames()
    frames[0][1]["payload"]["messageId"] = {"id": ASSISTANT_ID}
    found = check(session_stream(frames))
    assert "SSE-4" in rules(found)


# -- MSG-5 (deltas) --------------------------------------------------------------------------


def test_deltas_not_concatenating_to_content_is_msg5() -> None:
    msgs = turn_messages(reply="Hi there?")
    found = check(session_stream(session_frames(messages=msgs)))
    assert rules(found) == {"MSG-5"}
    assert levels(found, "MSG-5") == {"C"}


def test_missing_delta_is_msg5() -> None:
    frames = renumber([f for f in session_frames() if f[1].get("payload") != delta(" there")])
    assert rules(check(session_stream(frames))) == {"MSG-5"}


def test_deltas_of_another_message_id_is_msg5() -> None:
    frames = session_frames()
    for _, data in frames[:-1]:
        data["payload"]["messageId"] = "msg_other"
    assert rules(check(session_stream(frames))) == {"MSG-5"}


def test_no_deltas_for_a_nonempty_reply_is_msg5() -> None:
    frames = session_frames(deltas=(), messages=turn_messages())
    assert rules(check(session_stream(frames))) == {"MSG-5"}


def test_deltas_of_a_tool_turn_count_only_for_the_final_message() -> None:
    msgs = [
        turn_messages()[0],
        {**turn_messages()[1], "id": "msg_mid", "content": "Let me look.", "toolCalls": []},
        turn_messages()[1],
    ]
    frames = session_frames(messages=msgs)
    frames.insert(0, ("agent_message", audit_event(0, "agent_message", delta("Let me look."))))
    frames[0][1]["payload"]["messageId"] = "msg_mid"
    frames = renumber(frames)
    assert check(session_stream(frames)) == []


def test_deltas_match_direct() -> None:
    ex = session_stream()
    msgs = turn_messages()
    assert streaming.deltas_match(ex, streaming.frames(ex), msgs) == []
    msgs[-1]["content"] = "Hi"
    assert rules(streaming.deltas_match(ex, streaming.frames(ex), msgs)) == {"MSG-5"}


def test_terminal_data_direct() -> None:
    ex = session_stream()
    assert streaming.terminal_data(ex, streaming.frames(ex), SESSION_ID, USER_TEXT) == []
    ex = session_stream(session_frames()[:-1])
    assert streaming.terminal_data(ex, streaming.frames(ex), SESSION_ID, USER_TEXT) == []


# -- frames / content_deltas -----------------------------------------------------------------


def test_frames_parses_json_or_none() -> None:
    ex = stream_response([b'event: a\ndata: {"x": 1}\n\n', b"data: nope\n\n"])
    fs = streaming.frames(ex)
    assert [(e.type, d) for e, d in fs] == [("a", {"x": 1}), ("message", None)]


def test_is_delta_by_event_name_or_event_type() -> None:
    ex = stream_response(
        [
            b"event: agent_message\ndata: {}\n\n",
            b'event: message\ndata: {"eventType": "agent_message"}\n\n',
            b'event: latency\ndata: {"eventType": "latency"}\n\n',
            b"data: x\n\n",
        ]
    )
    assert [streaming.is_delta(e, d) for e, d in streaming.frames(ex)] == [
        True,
        True,
        False,
        False,
    ]


def test_content_deltas_are_the_agent_message_events() -> None:
    ex = session_stream(session_frames(before_done=[("latency", {"ms": 1})]))
    assert len(streaming.content_deltas(ex)) == len(DELTAS)


# -- SSE-8 -----------------------------------------------------------------------------------


def test_deltas_spread_over_reads_are_flushed() -> None:
    found = streaming.flushed(session_stream())
    assert found == []
    assert dict(found.examined) == {("SSE-8", "all"): 1}


def test_all_deltas_in_one_read_is_sse8() -> None:
    raw = raw_stream()
    found = streaming.flushed(stream_response([raw], t_ns=[1_000_000]))
    assert rules(found) == {"SSE-8"}
    assert levels(found, "SSE-8") == {"C"}


def test_deltas_in_separate_reads_within_a_tenth_of_a_ms_is_sse8() -> None:
    reads = encode(session_frames())
    t_ns = [1_000_000 + 25_000 * i for i in range(len(reads))]  # 0.1 ms in all
    assert rules(streaming.flushed(stream_response(reads, t_ns=t_ns))) == {"SSE-8"}


def test_sse8_says_the_timing_it_saw() -> None:
    """The finding gives the gaps between deltas; a pass's timing is said by flush_timing (the
    suite adds it as a note)."""
    from chatconform.checks.timing import flush_timing

    reads = encode(session_frames())
    t_ns = [1_000_000 + 25_000 * i for i in range(len(reads))]
    (f,) = streaming.flushed(stream_response(reads, t_ns=t_ns))
    assert f.got == (
        "all 3 deltas arrived within 0.050 ms in 3 read(s) (gaps between deltas (ms): 0.03, 0.03)"
    )
    spread = streaming.content_deltas(session_stream())
    assert flush_timing(spread) == (
        "3 deltas over 10.00 ms in 3 read(s); gaps between deltas (ms): 5.00, 5.00"
    )
    assert flush_timing([]) == "no delta arrived"


def test_flushed_threshold_is_configurable() -> None:
    reads = encode(session_frames())
    t_ns = [1_000_000 + 250_000 * i for i in range(len(reads))]  # 0.5 ms first to last delta
    ex = stream_response(reads, t_ns=t_ns)
    assert rules(streaming.flushed(ex)) == {"SSE-8"}
    assert streaming.flushed(ex, min_spread_ms=0.2) == []


def test_one_byte_reads_spread_in_time_are_flushed() -> None:
    reads = split_every(raw_stream(), 1)
    ex = stream_response(reads, t_ns=[i * 10_000 for i in range(len(reads))])
    assert streaming.flushed(ex) == []


def test_flushed_on_a_non_stream_is_sse1() -> None:
    ex = session_stream(content_type="application/json")
    found = streaming.flushed(ex)
    assert rules(found) == {"SSE-1"}
    assert not any(rule == "SSE-8" for rule, _ in found.examined)


def test_all_deltas_in_one_read_is_evidence_of_sse8() -> None:
    found = streaming.flushed(stream_response([raw_stream()], t_ns=[1_000_000]))
    assert rules(found) == {"SSE-8"}
    assert dict(found.examined) == {("SSE-8", "all"): 1}


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_deltas_cannot_show_flushing(n: int) -> None:
    # a reply of one delta proves nothing either way: no finding, and no evidence
    frames = session_frames(deltas=DELTAS[:n])
    found = streaming.flushed(session_stream(frames))
    assert found == []
    assert not found.examined
    assert found.unexercised == {
        ("SSE-8", "all"): f"a reply of {n} delta(s) cannot show flushing (at least 2 needed)"
    }
    v = {
        r.id: r for r in grade_rules(found, found.examined, {}, True, unexercised=found.unexercised)
    }
    assert v["SSE-8"].verdict == "SKIP"
    assert v["SSE-8"].reason == found.unexercised[("SSE-8", "all")]


def test_a_correct_stream_delivered_in_one_read_passes_the_protocol_checks() -> None:
    # buffering is SSE-8's concern only: the protocol checks accept the same bytes in one read
    assert check(stream_response([raw_stream()])) == []


# -- evidence per clause: SSE-4 (delta, tool_call, kb_retrieval), SSE-6 (done, error) ---------

KB = {
    "query": "q",
    "chunks": [{"id": "k1", "answer": "a", "similarity": 0.5, "sourceUrl": "https://x"}],
}
TOOL = {"toolCallId": "call_1", "name": "lookup", "arguments": {"q": 1}, "output": None}


def graded(*outcomes: Outcome, strict: bool = True) -> dict[str, Any]:
    """The rule verdicts of a run made of these outcomes (as the plugin sums them)."""
    total = Outcome()
    for o in outcomes:
        total += o
    vs = grade_rules(total, total.examined, {}, strict, unexercised=total.unexercised)
    return {v.id: v for v in vs}


def clause_table(v: Any) -> list[tuple[str, str, int]]:
    return [(c.id, c.verdict, c.evidence) for c in v.clauses]


def error_stream() -> Exchange:
    frames = session_frames()[:1]
    frames.append(("error", {**audit_event(2, "error", {}), **problem_body(500, "internal")}))
    return session_stream(frames)


def test_sse4_deltas_only_exercise_the_delta_clause() -> None:
    found = check(session_stream())
    assert {c for r, c in evidence(found) if r == "SSE-4"} == {"delta"}
    v = graded(found)["SSE-4"]
    assert v.verdict == "PASS"
    assert clause_table(v) == [
        ("delta", "PASS", 3),
        ("tool_call", "SKIP", 0),
        ("kb_retrieval", "SKIP", 0),
    ]
    assert v.reason == (
        "1/3 clauses: tool_call not exercised by any check; kb_retrieval not exercised by any check"
    )


def test_sse4_a_suite_reason_names_the_clause_it_could_not_provoke() -> None:
    why = "the target gives no tool prompt (--tool-prompt)"
    v = graded(check(session_stream()), Outcome().not_exercised("SSE-4", "tool_call", why))
    assert v["SSE-4"].reason == (
        f"1/3 clauses: tool_call {why}; kb_retrieval not exercised by any check"
    )


@pytest.mark.parametrize(
    ("extra", "clause"),
    [([("tool_call", TOOL)], "tool_call"), ([("kb_retrieval", KB)], "kb_retrieval")],
    ids=["tool_call", "kb_retrieval"],
)
def test_sse4_each_event_kind_is_the_evidence_of_its_clause(
    extra: list[tuple[str, dict[str, Any]]], clause: str
) -> None:
    found = check(session_stream(session_frames(before_done=extra)))
    assert found == []
    assert {c for r, c in evidence(found) if r == "SSE-4"} == {"delta", clause}
    assert found.examined[("SSE-4", clause)] == 1
    v = graded(found)["SSE-4"]
    assert v.verdict == "PASS"
    assert v.partial.startswith("2/3 clauses: ")
    assert clause not in v.partial


def test_sse4_every_clause_exercised_is_a_full_pass() -> None:
    found = check(
        session_stream(session_frames(before_done=[("tool_call", TOOL), ("kb_retrieval", KB)]))
    )
    v = graded(found)["SSE-4"]
    assert (v.verdict, v.reason) == ("PASS", "")
    assert clause_table(v) == [
        ("delta", "PASS", 3),
        ("tool_call", "PASS", 1),
        ("kb_retrieval", "PASS", 1),
    ]


@pytest.mark.parametrize("strict", [False, True])
def test_sse4_a_bad_tool_call_fails_its_clause_only(strict: bool) -> None:
    bad = {**TOOL, "arguments": "not-an-object"}
    found = check(
        session_stream(session_frames(before_done=[("tool_call", bad), ("kb_retrieval", KB)]))
    )
    assert [(f.rule, f.clause) for f in found] == [("SSE-4", "tool_call")]
    v = graded(found, strict=strict)["SSE-4"]
    want = "FAIL" if strict else "WARN"  # payload shapes are SSE-4's C part
    assert v.verdict == want
    assert clause_table(v) == [
        ("delta", "PASS", 3),
        ("tool_call", want, 1),
        ("kb_retrieval", "PASS", 1),
    ]


def test_sse4_one_finding_per_clause_and_stream_but_every_frame_counted() -> None:
    bad = {"messageId": ASSISTANT_ID, "delta": 5}
    frames = [(t, audit_event(i + 1, t, bad)) for i, t in enumerate(["agent_message"] * 3)]
    ex = session_stream(frames)
    body = [(e, d) for e, d in streaming.frames(ex)]
    found = streaming.payloads(ex, body)
    assert [(f.rule, f.clause) for f in found] == [("SSE-4", "delta")]
    assert dict(found.examined) == {("SSE-4", "delta"): 3}


def test_sse4_a_frame_that_is_no_audit_event_is_not_sse4_evidence() -> None:
    ex = stream_response([b"event: tool_call\ndata: not json\n\n"])
    body = list(streaming.frames(ex))
    found = streaming.payloads(ex, body)
    assert found == []
    assert not found.examined  # SSE-3's failure; SSE-4's tool_call clause was not exercised


def test_sse6_a_done_stream_exercises_the_done_clause_only() -> None:
    found = check(session_stream())
    assert {c for r, c in evidence(found) if r == "SSE-6"} == {"done"}
    v = graded(found)["SSE-6"]
    assert v.verdict == "PASS"
    assert clause_table(v) == [("done", "PASS", 1), ("error", "SKIP", 0)]
    assert v.reason == "1/2 clauses: error not exercised by any check"


def test_sse6_an_error_stream_exercises_the_error_clause_only() -> None:
    found = check(error_stream())
    assert found == []
    assert {c for r, c in evidence(found) if r == "SSE-6"} == {"error"}
    assert ("MSG-5", "all") not in found.examined  # no done: no assembled reply to compare
    v = graded(found)["SSE-6"]
    assert clause_table(v) == [("done", "SKIP", 0), ("error", "PASS", 1)]
    assert v.reason == "1/2 clauses: done not exercised by any check"


def test_sse6_done_and_error_streams_together_are_a_full_pass() -> None:
    v = graded(check(session_stream()), check(error_stream()))["SSE-6"]
    assert (v.verdict, v.reason) == ("PASS", "")
    assert clause_table(v) == [("done", "PASS", 1), ("error", "PASS", 1)]


def test_sse6_findings_name_their_clause() -> None:
    frames = session_frames()
    frames[-1][1]["messages"] = []
    done = check(session_stream(frames))
    assert [(f.rule, f.clause) for f in done] == [("SSE-6", "done")]
    err = check(session_stream([*session_frames()[:1], ("error", {"detail": "boom"})]))
    assert [(f.rule, f.clause) for f in err if f.rule == "SSE-6"] == [("SSE-6", "error")]
    v = graded(done, err, strict=True)["SSE-6"]
    assert clause_table(v) == [("done", "FAIL", 1), ("error", "FAIL", 1)]


def test_sse6_a_stream_without_terminal_frame_is_no_sse6_evidence() -> None:
    found = check(session_stream(session_frames()[:-1]))
    assert rules(found) == {"SSE-5"}
    assert not any(r == "SSE-6" for r, _ in found.examined)
    assert graded(found)["SSE-6"].verdict == "SKIP"
