"""POST /chat/completions: OAI-1 to OAI-7, over raw HTTP and through the official OpenAI SDKs."""

from __future__ import annotations

from typing import Any

import pytest

from chatconform import sdk
from chatconform.checks.common import expect_status, finding
from chatconform.checks.completions import completion, completion_stream, same_text
from chatconform.checks.errors import openai_error, problem
from chatconform.client import Client
from chatconform.plugin import Expect, unknown_id
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
    found, _ = completion(ex, agent_id)
    expect.check(found)


@pytest.mark.rule("OAI-1")
def test_other_openai_fields_ignored(api: Client, expect: Expect, agent_id: str) -> None:
    extra = {"temperature": 0.2, "max_tokens": 64, "top_p": 0.9, "presence_penalty": 0.1}
    ex = api.completion(request_body(agent_id, user="chatconform-user", **extra))
    expect.check(expect_status(ex, "OAI-1", 200))
    messages = [{"role": "tool", "content": "{}", "tool_call_id": "call_1"}]
    ex = api.completion(
        {"model": agent_id, "messages": [*messages, {"role": "user", "content": "hi"}]}
    )
    expect.check(expect_status(ex, "OAI-1", 200))


@pytest.mark.rule("OAI-4")
def test_streamed_completion(api: Client, expect: Expect, agent_id: str) -> None:
    ex = api.completion(request_body(agent_id, stream=True))
    found, _ = completion_stream(ex, agent_id)
    expect.check(found)


@pytest.mark.rule("OAI-2", "OAI-7")
def test_bad_requests(api: Client, expect: Expect, agent_id: str) -> None:
    user = [{"role": "user", "content": "hi"}]
    ex = api.completion({"model": unknown_id(), "messages": user})
    expect.check(expect_status(ex, "OAI-2", 400) + openai_error(ex) + problem(ex))
    for body in ({"messages": user}, {"model": agent_id}, {"model": agent_id, "messages": []}):
        ex = api.completion(body)
        expect.check(expect_status(ex, "OAI-2", 400, "C") + openai_error(ex))


@pytest.mark.rule("OAI-6")
def test_streamed_equals_plain(api: Client, expect: Expect, agent_id: str) -> None:
    plain, text = completion(api.completion(request_body(agent_id)), agent_id)
    streamed, stext = completion_stream(
        api.completion(request_body(agent_id, stream=True)), agent_id
    )
    expect.check(plain + streamed, fatal=True)
    expect.check(same_text("OAI-6", "plain", text, "streamed", stext))


@pytest.mark.rule("OAI-5")
@pytest.mark.parametrize("language", ["python", "node"])
def test_official_sdk(
    api: Client, expect: Expect, agent_id: str, target: Target, language: str
) -> None:
    """A plain and a streamed completion through the official SDK give the raw HTTP text."""
    if language == "node":
        why_not = sdk.node_unavailable()
        if why_not:
            pytest.skip(why_not)
    found, raw = completion(api.completion(request_body(agent_id)), agent_id)
    expect.check(found, fatal=raw is None)  # no SDK run against a target that fails raw HTTP
    run = sdk.run_python if language == "python" else sdk.run_node
    result = run(target, request_body(agent_id))
    if result.error:
        got = target.redact(result.error)
        expect.check([finding("OAI-5", f"the openai {language} SDK to complete", got)], fatal=True)
    expect.check(same_text("OAI-5", "raw HTTP", raw, f"openai-{language} plain", result.plain))
    expect.check(
        same_text("OAI-5", "raw HTTP", raw, f"openai-{language} streamed", result.streamed)
    )
