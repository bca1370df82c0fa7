"""Streamed replies of the session API: SSE-1 to SSE-8."""

from __future__ import annotations

from typing import Any

import pytest

from chatconform.checks.common import expect_problem_code, expect_status, finding
from chatconform.checks.streaming import flushed, session_stream
from chatconform.client import Client
from chatconform.plugin import Expect, unknown_id

STREAM_RULES = ("SSE-1", "SSE-2", "SSE-3", "SSE-4", "SSE-5", "SSE-6", "SSE-7", "MSG-5")


@pytest.mark.rule(*STREAM_RULES)
def test_plain_reply_stream(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    content = "Hello! Tell me something."
    ex = api.post_message(session["id"], content, stream=True)
    expect.check(session_stream(ex, session["id"], content))


@pytest.mark.rule(*STREAM_RULES)
def test_tool_and_retrieval_stream(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    content = "Is there a store near 60614, and what are the hours?"
    ex = api.post_message(session["id"], content, stream=True)
    expect.check(session_stream(ex, session["id"], content))


@pytest.mark.rule(*STREAM_RULES)
def test_second_turn_stream(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    sid = session["id"]
    expect.check(expect_status(api.post_message(sid, "First turn."), "SSE-1", 200), fatal=True)
    content = "Second turn, streamed."
    ex = api.post_message(sid, content, stream=True)
    expect.check(session_stream(ex, sid, content))


@pytest.mark.rule("SSE-8")
def test_frames_flushed(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    ex = api.post_message(session["id"], "Stream me a reply, token by token.", stream=True)
    expect.check(expect_status(ex, "SSE-8", 200), fatal=True)
    expect.check(flushed(ex))


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
    for ex in (unknown, no_key, empty):
        if ex.media_type != "application/problem+json":
            got = f"Content-Type {ex.headers.get('content-type')!r}"
            expect.check([finding("SSE-1", "a problem+json response, not a stream", got, ex)])
