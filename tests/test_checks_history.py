"""Unit tests of chatconform.checks.history (MSG-2..7) on hand-built turns and histories."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chatconform.checks import history
from chatconform.plugin import Expect
from chatconform.record import Exchange
from chatconform.verdicts import RuleVerdict, grade_rules

from observations import (
    MESSAGES_PATH,
    SESSION_ID,
    USER_TEXT,
    RecordedApi,
    audit_event,
    delta,
    encode,
    enveloped,
    evidence,
    exchange,
    json_response,
    levels,
    message,
    no_response,
    problem_response,
    rules,
    session_stream,
    stream_response,
    suite_module,
    tool_turn,
    turn_messages,
)


def turn_reply(messages: Any, status: int = 200) -> Exchange:
    return enveloped({"messages": messages}, status=status, method="POST", path=MESSAGES_PATH)


def page_reply(items: Any, next_cursor: Any = None, limit: Any = 50, **pag: Any) -> Exchange:
    body = {
        "success": True,
        "data": items,
        "pagination": {"nextCursor": next_cursor, "limit": limit, **pag},
    }
    return json_response(200, body, path=MESSAGES_PATH)


def transcript(turns: int = 2) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in range(1, turns + 1):
        out += turn_messages(content=f"q{n}", reply=f"a{n}", n=n)
    return out


# -- MSG-3: message_shapes -------------------------------------------------------------------


def test_message_shapes_correct_is_fine() -> None:
    found = history.message_shapes(turn_messages(), SESSION_ID, None)
    assert found == []
    assert dict(found.examined) == {("MSG-3", "all"): 2}  # one observation per message
    assert history.message_shapes(tool_turn(), SESSION_ID, None) == []
    assert not history.message_shapes([], SESSION_ID, None).examined


def test_message_shapes_with_knowledge_and_extra_fields_is_fine() -> None:
    kb = [{"id": "k1", "answer": "a", "similarity": 0.9, "sourceUrl": "https://x"}]
    msgs = turn_messages()
    msgs[1]["knowledge"] = kb
    msgs[1]["newField"] = {"x": 1}
    assert history.message_shapes(msgs, SESSION_ID, None) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", ...),
        ("id", ""),
        ("sessionId", ...),
        ("role", "system"),
        ("content", None),
        ("content", ...),
        ("createdAt", "12:00"),
        ("toolCalls", [{"id": "c", "name": "n", "arguments": "{}"}]),
        ("toolCalls", {"id": "c"}),
        ("knowledge", [{"id": "k", "answer": "a", "similarity": 2, "sourceUrl": "u"}]),
    ],
)
def test_message_shape_wrong_is_msg3(field: str, value: Any) -> None:
    msgs = turn_messages()
    if value is ...:
        del msgs[1][field]
    else:
        msgs[1][field] = value
    found = history.message_shapes(msgs, SESSION_ID, None)
    assert rules(found) == {"MSG-3"}
    assert levels(found, "MSG-3") == {"C"}


def test_message_of_another_session_is_msg3() -> None:
    msgs = turn_messages()
    msgs[0]["sessionId"] = "ses_other"
    assert rules(history.message_shapes(msgs, SESSION_ID, None)) == {"MSG-3"}


def test_tool_message_without_tool_call_id_is_msg3() -> None:
    msgs = tool_turn()
    del msgs[2]["toolCallId"]
    assert rules(history.message_shapes(msgs, SESSION_ID, None)) == {"MSG-3"}


def test_message_not_an_object_is_msg3() -> None:
    assert rules(history.message_shapes(["hello", None], SESSION_ID, None)) == {"MSG-3"}


def test_message_shapes_reports_at_most_five() -> None:
    msgs = [message("user", "x", f"m{i}", createdAt="bad") for i in range(10)]
    assert len(history.message_shapes(msgs, "ses_other", None)) == 5


# -- MSG-2: turn -----------------------------------------------------------------------------


def test_turn_correct_returns_its_messages() -> None:
    msgs = turn_messages()
    assert history.turn(turn_reply(msgs), USER_TEXT, SESSION_ID) == ([], msgs)
    found, _ = history.turn(turn_reply(msgs), USER_TEXT, SESSION_ID)
    assert evidence(found) == {("MSG-2", "all"), ("MSG-3", "all")}


def test_turn_with_tool_call_is_fine() -> None:
    msgs = tool_turn()
    assert history.turn(turn_reply(msgs), USER_TEXT, SESSION_ID) == ([], msgs)


@pytest.mark.parametrize(
    "ex",
    [
        problem_response(409, "session_busy", method="POST", path=MESSAGES_PATH),
        problem_response(500, "internal", method="POST", path=MESSAGES_PATH),
        turn_reply(turn_messages(), status=201),
        no_response(),
    ],
    ids=["409", "500", "201", "no-response"],
)
def test_turn_not_200_is_msg2_d(ex: Exchange) -> None:
    found, msgs = history.turn(ex, USER_TEXT, SESSION_ID)
    assert rules(found) == {"MSG-2"}
    assert levels(found, "MSG-2") == {"D"}
    assert msgs == []
    assert evidence(found) == (set() if ex.status is None else {("MSG-2", "all")})


@pytest.mark.parametrize(
    "ex",
    [
        turn_reply([]),
        turn_reply(None),
        turn_reply("Hi"),
        enveloped(turn_messages(), method="POST", path=MESSAGES_PATH),
    ],
    ids=["empty", "null", "string", "data-is-array"],
)
def test_turn_without_data_messages_is_msg2_c(ex: Exchange) -> None:
    found, msgs = history.turn(ex, USER_TEXT, SESSION_ID)
    assert rules(found) == {"MSG-2"}
    assert levels(found, "MSG-2") == {"C"}
    assert msgs == []
    assert evidence(found) == {("MSG-2", "all")}


@pytest.mark.parametrize(
    "ex",
    [
        json_response(200, {"messages": turn_messages()}, method="POST", path=MESSAGES_PATH),
        exchange(200, b"not json", content_type="application/json"),
    ],
    ids=["not-enveloped", "not-json"],
)
def test_turn_without_the_envelope_is_not_judged(ex: Exchange) -> None:
    # ENV-1 (every_response) fails this response once; MSG-2 has no data to read
    found, msgs = history.turn(ex, USER_TEXT, SESSION_ID)
    assert found == []
    assert msgs == []
    assert evidence(found) == set()
    assert found.unexercised == {("MSG-2", "all"): "not judged: see ENV-1"}


def test_turn_user_content_differs_is_msg2() -> None:
    found, _ = history.turn(turn_reply(turn_messages(content="other")), USER_TEXT, SESSION_ID)
    assert rules(found) == {"MSG-2"}


def test_turn_user_not_first_is_msg2() -> None:
    msgs = list(reversed(turn_messages()))
    found, _ = history.turn(turn_reply(msgs), USER_TEXT, SESSION_ID)
    assert rules(found) == {"MSG-2"}


def test_turn_without_assistant_last_is_msg2() -> None:
    found, _ = history.turn(turn_reply(turn_messages()[:1]), USER_TEXT, SESSION_ID)
    assert rules(found) == {"MSG-2"}
    found, _ = history.turn(turn_reply(tool_turn()[:3]), USER_TEXT, SESSION_ID)
    assert rules(found) == {"MSG-2"}


def test_turn_with_two_user_messages_is_msg2() -> None:
    msgs = turn_messages()
    msgs.insert(1, message("user", "again", "msg_u2"))
    found, _ = history.turn(turn_reply(msgs), USER_TEXT, SESSION_ID)
    assert rules(found) == {"MSG-2"}


def test_turn_assistant_content_not_string_is_msg2_and_msg3() -> None:
    msgs = turn_messages()
    msgs[1]["content"] = ["Hi"]
    found, _ = history.turn(turn_reply(msgs), USER_TEXT, SESSION_ID)
    assert rules(found) == {"MSG-2", "MSG-3"}


def test_turn_message_shape_is_msg3() -> None:
    msgs = turn_messages()
    msgs[1]["sessionId"] = "ses_other"
    found, got = history.turn(turn_reply(msgs), USER_TEXT, SESSION_ID)
    assert rules(found) == {"MSG-3"}
    assert got == msgs


def test_turn_returns_only_object_messages() -> None:
    msgs: list[Any] = turn_messages()
    msgs.insert(1, "noise")
    found, got = history.turn(turn_reply(msgs), USER_TEXT, SESSION_ID)
    assert "MSG-3" in rules(found)
    assert got == turn_messages()


def test_assembled_reports_under_the_given_rule() -> None:
    found = history.assembled(turn_messages()[:1], USER_TEXT, SESSION_ID, None, "SSE-6")
    assert rules(found) == {"SSE-6"}


# -- MSG-4: page -----------------------------------------------------------------------------


def test_page_correct_last_page() -> None:
    msgs = transcript()
    assert history.page(page_reply(msgs), None) == ([], msgs, None)


def test_page_evidence() -> None:
    found, _, _ = history.page(page_reply(transcript()), None)
    assert evidence(found) == {("MSG-4", "all")}
    found, _, _ = history.page(no_response(), None)
    assert rules(found) == {"MSG-4"}
    assert evidence(found) == set()


def test_page_correct_with_cursor_and_limit() -> None:
    msgs = transcript()[:2]
    assert history.page(page_reply(msgs, "c2", 2), 2) == ([], msgs, "c2")


def test_page_extra_pagination_fields_are_fine() -> None:
    assert history.page(page_reply([], hasMore=False), None) == ([], [], None)


@pytest.mark.parametrize("status", [400, 404, 500, 206])
def test_page_not_200_is_msg4_d(status: int) -> None:
    ex = problem_response(status, path=MESSAGES_PATH) if status >= 400 else page_reply([])
    if status < 400:
        ex.status = status
    found, msgs, cursor = history.page(ex, None)
    assert rules(found) == {"MSG-4"}
    assert levels(found, "MSG-4") == {"D"}
    assert (msgs, cursor) == ([], None)


@pytest.mark.parametrize(
    "ex",
    [
        enveloped({"messages": transcript()}, path=MESSAGES_PATH),
        enveloped(None, path=MESSAGES_PATH),
    ],
    ids=["data-object", "data-null"],
)
def test_page_data_not_an_array_is_msg4_c(ex: Exchange) -> None:
    found, msgs, _ = history.page(ex, None)
    assert rules(found) == {"MSG-4"}
    assert levels(found, "MSG-4") == {"C"}
    assert msgs == []


def test_page_without_the_envelope_is_not_judged() -> None:
    found, msgs, cursor = history.page(json_response(200, transcript(), path=MESSAGES_PATH), None)
    assert found == []
    assert (msgs, cursor) == ([], None)
    assert evidence(found) == set()
    assert found.unexercised == {("MSG-4", "all"): "not judged: see ENV-1"}


@pytest.mark.parametrize(
    "pagination",
    [None, "next", {"limit": 50}, {"nextCursor": None}, {"nextCursor": None, "limit": "50"}],
    ids=["absent", "string", "no-cursor", "no-limit", "limit-string"],
)
def test_page_bad_pagination_is_msg4_c(pagination: Any) -> None:
    body: dict[str, Any] = {"success": True, "data": transcript()}
    if pagination is not None:
        body["pagination"] = pagination
    found, msgs, cursor = history.page(json_response(200, body, path=MESSAGES_PATH), None)
    assert rules(found) == {"MSG-4"}
    assert levels(found, "MSG-4") == {"C"}
    assert msgs == transcript()
    assert cursor is None


@pytest.mark.parametrize(("got", "asked"), [(50, 10), (10, None), (100, 50)])
def test_page_limit_echo_wrong_is_msg4_c(got: int, asked: int | None) -> None:
    found, _, _ = history.page(page_reply([], limit=got), asked)
    assert rules(found) == {"MSG-4"}
    assert levels(found, "MSG-4") == {"C"}


@pytest.mark.parametrize("cursor", [5, {"after": "x"}, ["x"]])
def test_page_cursor_not_string_is_msg4_c(cursor: Any) -> None:
    found, _, _ = history.page(page_reply([], next_cursor=cursor), None)
    assert rules(found) == {"MSG-4"}


def test_page_more_items_than_limit_is_msg4_c() -> None:
    msgs = transcript(2)
    found, got, _ = history.page(page_reply(msgs, "c", 3), 3)
    assert rules(found) == {"MSG-4"}
    assert levels(found, "MSG-4") == {"C"}
    assert got == msgs
    many = [message("user", "x", f"m{i}") for i in range(51)]
    assert rules(history.page(page_reply(many), None)[0]) == {"MSG-4"}


# -- MSG-4: ordered_once ---------------------------------------------------------------------


def test_ordered_once_correct_is_fine() -> None:
    assert history.ordered_once(transcript(3), None) == []
    assert history.ordered_once([], None) == []
    assert evidence(history.ordered_once(transcript(3), None)) == {("MSG-4", "all")}


def test_ordered_once_equal_timestamps_are_fine() -> None:
    msgs = transcript()
    for m in msgs:
        m["createdAt"] = "2025-01-01T00:00:00Z"
    assert history.ordered_once(msgs, None) == []


def test_ordered_once_mixed_z_and_utc_offset_is_fine() -> None:
    msgs = transcript()
    msgs[1]["createdAt"] = "2025-01-01T00:00:01+00:00"
    assert history.ordered_once(msgs, None) == []


def test_ordered_once_duplicate_is_msg4_c() -> None:
    msgs = transcript()
    msgs.append(copy.deepcopy(msgs[1]))
    msgs[-1]["createdAt"] = "2025-01-01T00:00:09Z"
    found = history.ordered_once(msgs, None)
    assert rules(found) == {"MSG-4"}
    assert levels(found, "MSG-4") == {"C"}


def test_ordered_once_newest_first_is_msg4_c() -> None:
    found = history.ordered_once(list(reversed(transcript())), None)
    assert rules(found) == {"MSG-4"}
    assert levels(found, "MSG-4") == {"C"}


def test_ordered_once_one_out_of_order_is_msg4() -> None:
    msgs = transcript(3)
    msgs[2], msgs[3] = msgs[3], msgs[2]
    assert rules(history.ordered_once(msgs, None)) == {"MSG-4"}


def test_ordered_once_fractional_seconds_in_order_are_fine() -> None:
    msgs = transcript(1)
    msgs[0]["createdAt"] = "2025-01-01T00:00:00Z"
    msgs[1]["createdAt"] = "2025-01-01T00:00:00.500Z"
    assert history.ordered_once(msgs, None) == []


def test_ordered_once_non_utc_offsets_in_order_are_fine() -> None:
    msgs = transcript(1)
    msgs[0]["createdAt"] = "2025-01-01T01:00:00+02:00"
    msgs[1]["createdAt"] = "2025-01-01T00:00:00Z"
    assert history.ordered_once(msgs, None) == []


def test_ordered_once_non_utc_offsets_out_of_order_is_msg4() -> None:
    msgs = transcript(1)
    msgs[0]["createdAt"] = "2025-01-01T00:30:00Z"
    msgs[1]["createdAt"] = "2025-01-01T02:00:00+02:00"
    assert rules(history.ordered_once(msgs, None)) == {"MSG-4"}


def test_ordered_once_unhashable_id_is_not_a_crash() -> None:
    msgs = transcript(1)
    msgs[0]["id"] = ["m", 1]
    msgs[1]["id"] = ["m", 1]
    assert rules(history.ordered_once(msgs, None)) == {"MSG-4"}


# -- MSG-5: same_transcript ------------------------------------------------------------------


def test_same_transcript_equal_is_fine() -> None:
    msgs = transcript()
    got = copy.deepcopy(msgs)
    got[0]["extra"] = "ignored"
    got[1]["createdAt"] = "2025-01-01T00:00:30Z"  # only id, role, content, order compared
    found = history.same_transcript(got, msgs, None)
    assert found == []
    assert evidence(found) == {("MSG-5", "all")}


@pytest.mark.parametrize(
    ("index", "field", "value"),
    [(1, "content", "a1!"), (2, "role", "assistant"), (3, "id", "msg_new")],
)
def test_same_transcript_different_message_is_msg5(index: int, field: str, value: str) -> None:
    msgs = transcript()
    got = copy.deepcopy(msgs)
    got[index][field] = value
    found = history.same_transcript(got, msgs, None)
    assert rules(found) == {"MSG-5"}
    assert levels(found, "MSG-5") == {"C"}


def test_same_transcript_missing_message_is_msg5() -> None:
    msgs = transcript()
    assert rules(history.same_transcript(msgs[:-1], msgs, None)) == {"MSG-5"}


def test_same_transcript_extra_message_is_msg5() -> None:
    msgs = transcript()
    assert rules(history.same_transcript(msgs, msgs[:-1], None)) == {"MSG-5"}


def test_same_transcript_reordered_is_msg5() -> None:
    msgs = transcript()
    got = [msgs[2], msgs[3], msgs[0], msgs[1]]
    assert rules(history.same_transcript(got, msgs, None)) == {"MSG-5"}


# -- MSG-6 / MSG-7: well_formed --------------------------------------------------------------


@pytest.mark.parametrize("rule", ["MSG-6", "MSG-7"])
@pytest.mark.parametrize("allow", [True, False])
def test_well_formed_correct_is_fine(rule: str, allow: bool) -> None:
    found = history.well_formed(transcript(3), rule, None, allow)
    assert found == []
    clause = "dropped-mid-stream" if rule == "MSG-7" else "all"
    assert dict(found.examined) == {(rule, clause): 1}
    assert history.well_formed(tool_turn() + transcript(1), rule, None, allow) == []
    assert history.well_formed([], rule, None, allow) == []


def test_well_formed_absent_reply_allowed_only_when_told() -> None:
    msgs = transcript(2)
    del msgs[1]  # the first turn's reply is absent
    assert history.well_formed(msgs, "MSG-7", None, allow_absent_reply=True) == []
    found = history.well_formed(msgs, "MSG-6", None, allow_absent_reply=False)
    assert rules(found) == {"MSG-6"}
    assert levels(found, "MSG-6") == {"C"}


def test_well_formed_last_reply_absent() -> None:
    msgs = transcript(2)[:-1]
    assert history.well_formed(msgs, "MSG-7", None, True) == []
    assert rules(history.well_formed(msgs, "MSG-6", None, False)) == {"MSG-6"}


@pytest.mark.parametrize("allow", [True, False])
def test_well_formed_duplicated_message_is_a_finding(allow: bool) -> None:
    msgs = transcript(2)
    msgs.insert(2, copy.deepcopy(msgs[1]))
    assert rules(history.well_formed(msgs, "MSG-7", None, allow)) == {"MSG-7"}


@pytest.mark.parametrize("allow", [True, False])
def test_well_formed_duplicated_reply_is_a_finding(allow: bool) -> None:
    msgs = transcript(1)
    msgs.append({**msgs[1], "id": "msg_a_again"})
    assert rules(history.well_formed(msgs, "MSG-7", None, allow)) == {"MSG-7"}


@pytest.mark.parametrize("allow", [True, False])
def test_well_formed_not_starting_with_user_is_a_finding(allow: bool) -> None:
    msgs = transcript(1)[1:] + transcript(1)
    msgs[0]["id"] = "msg_orphan"
    assert rules(history.well_formed(msgs, "MSG-6", None, allow)) == {"MSG-6"}


@pytest.mark.parametrize("allow", [True, False])
def test_well_formed_partial_reply_is_a_finding(allow: bool) -> None:
    msgs = tool_turn()[:3] + transcript(1)  # user, assistant(toolCalls), tool: no final reply
    assert rules(history.well_formed(msgs, "MSG-7", None, allow)) == {"MSG-7"}
    msgs = tool_turn()[:2]  # user, assistant(toolCalls) only
    assert rules(history.well_formed(msgs, "MSG-7", None, allow)) == {"MSG-7"}


# -- MSG-7's evidence: only a stream really dropped before its terminal frame ---------------
# The decision lives in the suite (suites/test_history.py, test_drop_mid_stream); it is run here
# on recorded observations through a stand-in for the Client, and its outcome graded.

STORY = "Please tell me a long story."
FOLLOW = "Are you still there?"


def two_deltas(ended_by: str) -> Exchange:
    """A stream of two agent_message frames and no terminal frame, ended as `ended_by`."""
    frames = [
        (t, audit_event(i + 1, t, delta(d)))
        for i, (t, d) in enumerate([("agent_message", "Once"), ("agent_message", " upon")])
    ]
    return stream_response(encode(frames), ended_by=ended_by)


def after_drop(
    story_copies: int = 1, newest_first: bool = False
) -> tuple[list[Exchange], list[Exchange]]:
    """The follow-up post and the history after the drop (the dropped turn has no reply)."""
    follow = [
        message("user", FOLLOW, "msg_f1", created_at="2025-01-01T00:00:05Z"),
        message("assistant", "Yes.", "msg_f2", created_at="2025-01-01T00:00:06Z"),
    ]
    stories = [
        message("user", STORY, f"msg_s{i}", created_at="2025-01-01T00:00:01Z")
        for i in range(story_copies)
    ]
    history = stories + follow
    return [turn_reply(follow)], [page_reply(history[::-1] if newest_first else history)]


def drop_mid_stream(api: RecordedApi) -> tuple[Expect, RuleVerdict]:
    expect = Expect()
    suite_module("history").test_drop_mid_stream(api, expect, {"id": SESSION_ID})
    out = expect.outcome
    vs = grade_rules(out, out.examined, {}, True, unexercised=out.unexercised)
    return expect, next(v for v in vs if v.id == "MSG-7")


def test_msg7_a_stream_dropped_mid_way_is_evidence() -> None:
    plain, pages = after_drop()
    api = RecordedApi(post_message=[two_deltas("client-drop"), *plain], list_messages=pages)
    expect, v = drop_mid_stream(api)
    (note,) = expect.outcome  # the timing it saw, as a note (level I): never a verdict
    assert note.is_note
    assert note.got.startswith("dropped after 2 events, ")
    assert "the follow-up post answered 200" in note.got
    assert api.calls["post_message"][0] == (
        (SESSION_ID, STORY),
        {"stream": True, "stop_after_events": 2},
    )
    assert len(api.calls["list_messages"]) == 1
    assert expect.outcome.examined[("MSG-7", "dropped-mid-stream")] == 2  # follow-up, history
    assert (v.verdict, v.reason) == ("PASS", "")


def test_msg6_msg7_timing_in_words() -> None:
    """Which concurrent post ran when and by how much they overlapped; when a stream was dropped
    and when the session answered again (times in ns on the exchanges, shown in ms)."""
    from types import SimpleNamespace

    from chatconform.checks.timing import drop_timing, overlap_timing

    def ex(start_ms: float, end_ms: float | None, status: int | None = 200) -> Any:
        end = None if end_ms is None else int(end_ms * 1e6)
        return SimpleNamespace(t_start_ns=int(start_ms * 1e6), t_end_ns=end, status=status)

    both = overlap_timing([("streamed post", ex(1000, 1080)), ("plain post", ex(1054.5, 1150.3))])
    assert both == (
        "streamed post 0.0-80.0 ms (200), plain post 54.5-150.3 ms (200); overlapped 25.5 ms"
    )
    apart = overlap_timing([("plain post", ex(0, 10)), ("streamed post", ex(12, 20, 409))])
    assert apart.endswith("did not overlap (the second started 2.0 ms after the first ended)")
    assert "(409)" in apart
    dropped = drop_timing(ex(0, 35), 2, ex(40, 339), busy=1)
    assert dropped == (
        "dropped after 2 events, 35 ms into the stream; the follow-up post answered 200 304 ms "
        "after the drop (1 session_busy retry)"
    )


def test_msg7_a_dropped_turn_kept_twice_fails() -> None:
    plain, pages = after_drop(story_copies=2)
    api = RecordedApi(post_message=[two_deltas("client-drop"), *plain], list_messages=pages)
    _, v = drop_mid_stream(api)
    assert v.verdict == "FAIL"
    assert "the dropped turn's user message kept once" in v.reason


def test_msg7_on_a_history_out_of_order_is_msg4_and_not_judged() -> None:
    # one defect (newest first) fails MSG-4 once; MSG-7 cannot judge the turns' shape from it
    plain, pages = after_drop(newest_first=True)
    api = RecordedApi(post_message=[two_deltas("client-drop"), *plain], list_messages=pages)
    expect, v = drop_mid_stream(api)
    assert rules(expect.outcome) == {"MSG-4"}
    assert expect.outcome.unexercised == {
        ("MSG-7", "dropped-mid-stream"): "not judged: see MSG-4 (the history is not in order)"
    }
    # the follow-up post after the drop was still examined: MSG-7 passes on that evidence
    assert expect.outcome.examined[("MSG-7", "dropped-mid-stream")] == 1
    assert v.verdict == "PASS"


@pytest.mark.parametrize(
    ("streamed", "why"),
    [
        (
            session_stream(ended_by="client-drop"),
            "the stream was not dropped mid-way (ended by client-drop after 4 events: "
            "agent_message, agent_message, done)",
        ),
        (
            two_deltas("eof"),
            "the stream was not dropped mid-way (ended by eof after 2 events: "
            "agent_message, agent_message)",
        ),
        (
            session_stream(),
            "the stream was not dropped mid-way (ended by eof after 4 events: "
            "agent_message, agent_message, done)",
        ),
    ],
    ids=["whole-reply-before-the-drop", "server-closed-first", "never-dropped"],
)
def test_msg7_without_a_real_drop_is_not_exercised(streamed: Exchange, why: str) -> None:
    # the whole reply in one read, or a server that closed first: nothing was dropped mid-stream
    api = RecordedApi(post_message=[streamed], list_messages=[])
    expect, v = drop_mid_stream(api)
    assert expect.outcome == []
    assert not any(r == "MSG-7" for r, _ in expect.outcome.examined)
    assert expect.outcome.unexercised == {("MSG-7", "dropped-mid-stream"): why}
    assert (v.verdict, v.reason) == ("SKIP", why)
    assert len(api.calls["post_message"]) == 1  # no follow-up, no history read: nothing to judge
    assert not api.calls["list_messages"]
