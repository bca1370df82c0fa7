"""Streamed replies of the session API: SSE-1 to SSE-8."""

from __future__ import annotations

from typing import Any

import pytest

from chatconform.checks.common import expect_problem_code, expect_status, finding
from chatconform.checks.streaming import content_deltas, flushed, is_stream, session_stream
from chatconform.checks.timing import flush_timing, timing_note
from chatconform.client import Client
from chatconform.plugin import Expect, unknown_id
from chatconform.target import Target
from chatconform.verdicts import Outcome

STREAM_RULES = ("SSE-1", "SSE-2", "SSE-3", "SSE-4", "SSE-5", "SSE-6", "SSE-7", "MSG-5")


@pytest.mark.rule(*STREAM_RULES)
def test_plain_reply_stream(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    content = "Hello! Tell me something."
    ex = api.post_message(session["id"], content, stream=True)
    expect.check(session_stream(ex, session["id"], content))


# the SSE-4 clause each of the target's prompts is meant to exercise, and the event that shows it
PROMPTS = {
    "tool_prompt": ("tool_call", "tool_call", "--tool-prompt"),
    "knowledge_prompt": ("kb_retrieval", "kb_retrieval", "--knowledge-prompt"),
}


@pytest.mark.rule(*STREAM_RULES)
@pytest.mark.parametrize("prompt", sorted(PROMPTS))
def test_agent_action_stream(
    api: Client, expect: Expect, make_session: Any, target: Target, prompt: str
) -> None:
    """A streamed turn with the prompt the target names for a tool call / a knowledge retrieval."""
    clause, event, option = PROMPTS[prompt]
    content = getattr(target, prompt)
    if not content:
        env = option.removeprefix("--").replace("-", "_").upper()
        why = f"not configured: the target names no prompt for it (give {option} or FLOWYTE_{env})"
        expect.unexercised("SSE-4", clause, why)
        pytest.skip(why)
    session = make_session()
    ex = api.post_message(session["id"], content, stream=True)
    expect.check(session_stream(ex, session["id"], content))
    if ex.stream is not None and event not in {e.type for e in ex.stream.events}:
        expect.unexercised(
            "SSE-4", clause, f"the {option.removeprefix('--')} produced no {event} event"
        )


@pytest.mark.rule("SSE-5", "SSE-6")
def test_error_frame(api: Client, expect: Expect, make_session: Any, target: Target) -> None:
    """A turn the agent fails (the target's --error-prompt) ends with one `error` frame whose data
    is a problem object (SSE-5, SSE-6 error)."""
    if not target.error_prompt:
        why = (
            "not configured: the target names no prompt that makes its agent fail (--error-prompt)"
        )
        expect.unexercised("SSE-6", "error", why)
        pytest.skip(why)
    session = make_session()
    content = target.error_prompt
    ex = api.post_message(session["id"], content, stream=True)
    expect.check(is_stream(ex), fatal=True)
    expect.check(session_stream(ex, session["id"], content))
    if ex.stream is not None and "error" not in {e.type for e in ex.stream.events}:
        expect.unexercised("SSE-6", "error", "the error prompt did not provoke an error frame")


@pytest.mark.replies(2)  # two turns of one session, in turn
@pytest.mark.rule(*STREAM_RULES)
def test_second_turn_stream(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    sid = session["id"]
    expect.check(expect_status(api.post_message(sid, "First turn."), "SSE-1", 200), fatal=True)
    content = "Second turn, streamed."
    ex = api.post_message(sid, content, stream=True)
    expect.check(session_stream(ex, sid, content))


FLUSH_ATTEMPTS = 3  # a timing check: one burst may be the client's scheduling, three are the server


@pytest.mark.rule("SSE-8")
def test_frames_flushed(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    """Deltas arrive spread over time. A reply that arrived in one burst is looked at again (up to
    FLUSH_ATTEMPTS replies): a buffering server bursts every time, a busy client only now and then.
    The finding gives the timing of every attempt; a pass notes the timing it saw (level I)."""
    seen: list[str] = []
    for n in range(FLUSH_ATTEMPTS):
        ex = api.post_message(
            session["id"], f"Stream me a reply, token by token ({n}).", stream=True
        )
        expect.check(expect_status(ex, "SSE-8", 200), fatal=True)
        outcome = flushed(ex)
        if not outcome:
            if outcome.examined and ex.stream is not None:
                timing = flush_timing(content_deltas(ex))
                earlier = f" (after {n} burst(s): {'; '.join(seen)})" if seen else ""
                outcome.add(timing_note("SSE-8", f"reply {n + 1}: {timing}{earlier}"))
            expect.check(outcome)
            return
        seen.append(outcome[0].got)
    outcome[0].got = f"in {FLUSH_ATTEMPTS} replies: " + "; ".join(seen)
    expect.check(outcome)


@pytest.mark.rule("SSE-1")
def test_errors_before_stream_are_problems(
    api: Client, expect: Expect, session: dict[str, Any]
) -> None:
    unknown = api.post_message(unknown_id(), "hello", stream=True)
    expect.check(expect_problem_code(unknown, "SSE-1", 404, "session_not_found"))
    no_key = api.post_message(session["id"], "hello", stream=True, key=None)
    expect.check(expect_status(no_key, "SSE-1", 401))
    empty = api.post_message(session["id"], "", stream=True)
    expect.check(expect_status(empty, "SSE-1", 400))
    for ex in (unknown, no_key, empty):  # an ordinary response, not a stream (its shape: ERR-1)
        not_stream = Outcome().saw("SSE-1") if ex.status is not None else Outcome()
        if ex.media_type == "text/event-stream" or ex.stream is not None:
            got = f"HTTP {ex.status} as a stream ({ex.headers.get('content-type')!r})"
            not_stream.add(finding("SSE-1", "an ordinary error response, not a stream", got, ex))
        expect.check(not_stream)
