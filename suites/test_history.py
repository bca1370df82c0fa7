"""Messages and history: MSG-1 to MSG-7."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from chatconform.checks.common import data_of, expect_problem_code, expect_status, finding
from chatconform.checks.errors import validation_error
from chatconform.checks.history import ordered_once, page, same_transcript, turn, well_formed
from chatconform.checks.streaming import frames, is_stream, pending_terminal
from chatconform.checks.timing import drop_timing, overlap_timing, timing_note
from chatconform.client import Client
from chatconform.plugin import Expect, need
from chatconform.record import Exchange
from chatconform.target import Target
from chatconform.verdicts import Outcome

MAX_CONTENT = 32_000
MAX_PAGES = 50


def in_order(history: list[dict[str, Any]], last: Exchange | None, expect: Expect) -> bool:
    """MSG-4's order of the history (checked and recorded). The rules that compare a history with
    the turns (MSG-5, MSG-6, MSG-7) are judged only on a history in order: a reversed history is
    MSG-4's failure, reported once, and those rules say "not judged: see MSG-4"."""
    return expect.check(ordered_once(history, last))


def not_judged_order(expect: Expect, *rules: str) -> None:
    for rid in rules:
        expect.unexercised(rid, None, "not judged: see MSG-4 (the history is not in order)")


def read_history(
    api: Client, expect: Expect, sid: str, limit: int | None = None
) -> tuple[list[dict[str, Any]], Exchange | None]:
    """Page through the whole history (bounded), checking each page (MSG-4)."""
    history: list[dict[str, Any]] = []
    cursor: str | None = None
    last: Exchange | None = None
    for _ in range(MAX_PAGES):
        last = api.list_messages(sid, limit=limit, cursor=cursor)
        found, items, cursor = page(last, limit)
        expect.check(found, fatal=bool(found and last.status != 200))
        history += items
        if not cursor:
            return history, last
    expect.check([finding("MSG-4", f"the last page within {MAX_PAGES} pages", "more", last, "C")])
    return history, last


def streamed_messages(ex: Exchange, expect: Expect) -> list[dict[str, Any]]:
    """The assembled messages of a streamed turn, from its done frame (SSE-1/5/6 when missing)."""
    expect.check(is_stream(ex), fatal=True)
    if pending_terminal(ex):
        pytest.skip("not judged: see SSE-2 (the done frame lacks its blank line, never dispatched)")
    for e, data in frames(ex):
        if e.type == "done" and isinstance(data, dict) and isinstance(data.get("messages"), list):
            return [m for m in data["messages"] if isinstance(m, dict)]
    has_done = any(e.type == "done" for e, _ in frames(ex))
    rule, what = ("SSE-6", "done data with messages") if has_done else ("SSE-5", "a done frame")
    got = "none, so the history cannot be compared with the turn"
    expect.check([finding(rule, f"{what} carrying the turn's messages", got, ex)], fatal=True)
    return []


@pytest.mark.rule("MSG-1", "MSG-2", "MSG-3")
def test_plain_turn(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    content = "Hello there, what can you do?"
    ex = api.post_message(session["id"], content, stream=False)
    found, _ = turn(ex, content, session["id"])
    expect.check(found)


@pytest.mark.rule("MSG-1", "MSG-2", "MSG-3")
def test_stream_defaults_to_false(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    content = "Without a stream flag, please."
    ex = api.post_message(session["id"], content)
    defaults = Outcome().saw("MSG-1") if ex.status is not None else Outcome()
    if ex.media_type == "text/event-stream":
        got = "a text/event-stream reply"
        expect.check(
            defaults.add(finding("MSG-1", "stream to default to false (JSON)", got, ex, "C"))
        )
        return
    expect.check(defaults)
    found, _ = turn(ex, content, session["id"])
    expect.check(found)


@pytest.mark.rule("MSG-2", "MSG-3")
def test_tool_and_knowledge_turn(
    api: Client, expect: Expect, session: dict[str, Any], target: Target
) -> None:
    """A turn in which the agent calls a tool (the target's --tool-prompt): its tool message
    answers one of the assistant's toolCalls."""
    content = need(target.tool_prompt, "--tool-prompt")
    ex = api.post_message(session["id"], content, stream=False)
    found, messages = turn(ex, content, session["id"])
    expect.check(found)
    calls = {c.get("id") for m in messages for c in m.get("toolCalls") or [] if isinstance(c, dict)}
    tools = [m for m in messages if m.get("role") == "tool"]
    if not tools:
        expect.unexercised("MSG-3", None, "the tool prompt produced no tool message")
        return
    links = Outcome().saw("MSG-3", n=len(tools))
    for m in tools:
        if m.get("toolCallId") not in calls:
            got = f"toolCallId {m.get('toolCallId')!r}, calls {sorted(map(str, calls))}"
            links.add(finding("MSG-3", "a tool message answering a toolCall", got, ex))
    expect.check(links)


@pytest.mark.rule("MSG-1", "ERR-2")
def test_content_bounds(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    sid = session["id"]
    for bad in ("", "x" * (MAX_CONTENT + 1)):
        ex = api.post_message(sid, bad)
        expect.check(expect_status(ex, "MSG-1", 400, "C" if bad else None))
        if ex.status == 400:  # rejecting it is MSG-1's; the shape of the rejection ERR-2's
            expect.check(validation_error(ex, ("content",)))
    ex = api.request("POST", f"/chat/sessions/{sid}/messages", json_body={"stream": False})
    expect.check(expect_status(ex, "MSG-1", 400) + validation_error(ex, ("content",)))
    ex = api.post_message(sid, "é" * MAX_CONTENT)
    expect.check(expect_status(ex, "MSG-1", 200, "C"))


@pytest.mark.replies(3)  # three turns of one session, in turn
@pytest.mark.rule("MSG-4", "MSG-5")
def test_history_equals_turns(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    sid = session["id"]
    returned: list[dict[str, Any]] = []
    for n, (content, stream) in enumerate(
        [("First question", False), ("What are your hours?", True), ("Store near 10001?", False)]
    ):
        ex = api.post_message(sid, f"{content} ({n})", stream=stream)
        expect.check(expect_status(ex, "MSG-5", 200), fatal=True)
        msgs = streamed_messages(ex, expect) if stream else (data_of(ex) or {}).get("messages", [])
        if not msgs:
            got = ex.describe()
            expect.check([finding("MSG-5", "the turn's messages", got, ex)], fatal=True)
        returned += msgs
    for limit in (None, 2, 1):
        history, last = read_history(api, expect, sid, limit)
        if in_order(history, last, expect):
            expect.check(same_transcript(history, returned, last))
        else:
            not_judged_order(expect, "MSG-5")


@pytest.mark.rule("MSG-4")
def test_limit_bounds(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    for bad in (0, 101, -1):
        ex = api.list_messages(session["id"], limit=bad)
        expect.check(expect_problem_code(ex, "MSG-4", 400, "validation_error", "C"))
    ex = api.list_messages(session["id"], cursor="not-a-cursor-this-server-issued")
    expect.check(expect_problem_code(ex, "MSG-4", 400, "validation_error", "C"))


@pytest.mark.rule("MSG-6")
def test_concurrent_posts(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    sid = session["id"]
    results: list[Exchange] = []
    barrier = threading.Barrier(2, timeout=10)

    def post(n: int, stream: bool) -> None:
        barrier.wait()
        results.append(api.post_message(sid, f"Concurrent message {n}", stream=stream))

    threads = [threading.Thread(target=post, args=(n, n == 1)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=api.target.limits.stream_timeout + 5)
    statuses = sorted(r.status or 0 for r in results)
    busy = [r for r in results if r.status == 409]
    # which post ran when (from the first one's start), and by how much they overlapped
    timing = overlap_timing(
        [("streamed post" if r.stream is not None else "plain post", r) for r in results]
    )
    posts = Outcome()
    if statuses not in ([200, 200], [200, 409]):
        got = f"statuses {statuses}"
        posts.add(finding("MSG-6", "both 200, or one 409 session_busy", got, results[-1]))
    for r in busy:
        posts += expect_problem_code(r, "MSG-6", 409, "session_busy")
    clean = expect.check(_timed(posts, "MSG-6", timing, note=False))  # before a fatal page
    history, last = read_history(api, expect, sid)
    if not in_order(history, last, expect):
        not_judged_order(expect, "MSG-6")
        return
    outcome = well_formed(history, "MSG-6", last, allow_absent_reply=False)
    users = [m for m in history if m.get("role") == "user"]
    if len(users) != statuses.count(200):
        got = f"{len(users)} user messages for {statuses.count(200)} accepted posts"
        outcome.add(finding("MSG-6", "one user message per accepted post", got, last))
    expect.check(_timed(outcome, "MSG-6", timing, note=clean))


def _timed(outcome: Outcome, rule: str, timing: str, note: bool = True) -> Outcome:
    """The rule's findings with the timing the test saw in their `got`; when none failed (and
    `note`), the timing as a note (level I) of an outcome that examined the rule."""
    mine = [f for f in outcome if f.rule == rule and not f.is_note]
    for f in mine:
        f.got += f" (timing: {timing})"
    if note and not mine and outcome.examined:
        outcome.add(timing_note(rule, timing))
    return outcome


@pytest.mark.rule("MSG-7")
def test_drop_mid_stream(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    sid = session["id"]
    dropped = api.post_message(
        sid, "Please tell me a long story.", stream=True, stop_after_events=2
    )
    expect.check(is_stream(dropped), fatal=True)
    assert dropped.stream is not None
    names = [e.type for e in dropped.stream.events]
    if dropped.stream.ended_by != "client-drop" or {"done", "error"} & set(names):
        why = (
            f"the stream was not dropped mid-way (ended by {dropped.stream.ended_by} after "
            f"{len(names)} events: {', '.join(names[-3:]) or 'none'})"
        )
        expect.unexercised("MSG-7", None, why)
        return
    # the session must stay usable: a follow-up post succeeds (a short session_busy is allowed)
    deadline = time.monotonic() + 10
    follow = api.post_message(sid, "Are you still there?")
    busy = 0
    while follow.status == 409 and time.monotonic() < deadline:
        busy += 1
        time.sleep(0.2)
        follow = api.post_message(sid, "Are you still there?")
    timing = drop_timing(dropped, len(names), follow, busy)
    usable = Outcome()
    usable += expect_status(follow, "MSG-7", 200)
    clean = expect.check(_timed(usable, "MSG-7", timing, note=False))  # before a fatal page
    history, last = read_history(api, expect, sid)
    if not in_order(history, last, expect):
        not_judged_order(expect, "MSG-7")
        return
    outcome = well_formed(history, "MSG-7", last, allow_absent_reply=True)
    firsts = [m for m in history if m.get("content") == "Please tell me a long story."]
    if len(firsts) != 1:
        got = f"{len(firsts)} copies of it"
        outcome.add(finding("MSG-7", "the dropped turn's user message kept once", got, last))
    expect.check(_timed(outcome, "MSG-7", timing, note=clean))
