"""POST /chat/completions: OAI-1 to OAI-7, over raw HTTP and through the official OpenAI SDKs."""

from __future__ import annotations

from typing import Any

import pytest

from chatconform import sdk
from chatconform.budget import Budget
from chatconform.checks.common import expect_status
from chatconform.checks.completions import (
    completion,
    completion_stream,
    request_taken,
    same_text,
    sdk_agrees,
    sdk_unavailable,
)
from chatconform.client import Client
from chatconform.overlap import at_once
from chatconform.plugin import Expect, sdk_languages, unknown_id
from chatconform.target import Target

QUESTION = "What are your opening hours?"


def request_body(model: str, stream: bool | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful store assistant."},
            {"role": "user", "content": "Hi!"},
            {"role": "assistant", "content": "Hello, how can I help?"},
            {"role": "user", "content": QUESTION},
        ],
        **extra,
    }
    if stream is not None:
        body["stream"] = stream
    return body


@pytest.mark.rule("OAI-1", "OAI-3")
def test_plain_completion(api: Client, expect: Expect, agent_id: str) -> None:
    ex = api.completion(request_body(agent_id))
    if not expect.check(request_taken(ex)):
        expect.unexercised("OAI-3", None, "not judged: see OAI-1 (the request was not taken)")
        return
    found, _ = completion(ex, agent_id)
    expect.check(found)


@pytest.mark.rule("OAI-1")
def test_other_openai_fields_ignored(
    api: Client, expect: Expect, agent_id: str, budget: Budget | None
) -> None:
    extra = {"temperature": 0.2, "max_tokens": 64, "top_p": 0.9, "presence_penalty": 0.1}
    messages = [{"role": "tool", "content": "{}", "tool_call_id": "call_1"}]
    bodies = [
        request_body(agent_id, user="chatconform-user", **extra),
        {"model": agent_id, "messages": [*messages, {"role": "user", "content": "hi"}]},
    ]  # independent requests, sent at once (each waits on the agent)
    for ex in at_once(budget, *(lambda b=b: api.completion(b) for b in bodies)):
        expect.check(request_taken(ex))


@pytest.mark.rule("OAI-4")
def test_streamed_completion(api: Client, expect: Expect, agent_id: str) -> None:
    ex = api.completion(request_body(agent_id, stream=True))
    found, _ = completion_stream(ex, agent_id)
    expect.check(found)


@pytest.mark.rule("OAI-2", "OAI-7")
def test_bad_requests(api: Client, expect: Expect, agent_id: str) -> None:
    """OAI-7 (the OpenAI-style error member) is judged by the plugin on each of these errors."""
    user = [{"role": "user", "content": "hi"}]
    ex = api.completion({"model": unknown_id(), "messages": user})
    expect.check(expect_status(ex, "OAI-2", 400))
    for body in ({"messages": user}, {"model": agent_id}, {"model": agent_id, "messages": []}):
        ex = api.completion(body)
        expect.check(expect_status(ex, "OAI-2", 400, "C"))


NOT_DETERMINISTIC = (
    "agent not declared deterministic (declare it with --deterministic, FLOWYTE_DETERMINISTIC=1 "
    'or "deterministic": true in the target file)'
)


@pytest.mark.rule("OAI-6")
def test_streamed_equals_plain(
    api: Client, expect: Expect, agent_id: str, target: Target, budget: Budget | None
) -> None:
    """Only for an agent the target declares deterministic: two requests of an agent whose replies
    vary (an LLM) carry different texts, and that is no fault. Both are sent at once."""
    if not target.deterministic:
        pytest.skip(NOT_DETERMINISTIC)
    plain_ex, stream_ex = at_once(
        budget,
        lambda: api.completion(request_body(agent_id)),
        lambda: api.completion(request_body(agent_id, stream=True)),
    )
    plain, text = completion(plain_ex, agent_id)
    streamed, stext = completion_stream(stream_ex, agent_id)
    expect.check(plain + streamed)
    broken = next((f.rule for f in plain + streamed if f.effective_level() == "D"), None)
    if broken is not None:  # no text to compare: that is the failure of the more basic rule
        expect.unexercised("OAI-6", None, f"not judged: see {broken} on these responses")
        return
    expect.check(same_text("OAI-6", "plain", text, "streamed", stext))


@pytest.mark.replies(2)  # an SDK's start-up, then its replies
@pytest.mark.rule("OAI-5")
@pytest.mark.parametrize("language", ["python", "node"])
def test_official_sdk(
    expect: Expect,
    agent_id: str,
    target: Target,
    budget: Budget | None,
    language: str,
    request: pytest.FixtureRequest,
) -> None:
    """A plain and a streamed completion through the official SDK: each succeeds, and the text it
    hands its caller is the text chatconform reads in the copy of the bytes that SDK parsed."""
    if language not in sdk_languages(request.config):
        why = f"not run: --sdk {request.config.getoption('cc_sdk')} leaves the {language} SDK out"
        expect.check(sdk_unavailable(language, why))
        pytest.skip(why)
    if language == "node":
        why_not = sdk.node_unavailable()
        if why_not:
            expect.check(sdk_unavailable("node", why_not))
            pytest.skip(why_not)
    for call in sdk.run(language, target, request_body(agent_id), budget):
        expect.check(sdk_agrees(call, agent_id))
