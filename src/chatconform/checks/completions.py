"""OAI-1..6: the OpenAI-compatible POST /chat/completions (OAI-7 is judged on every response).

Each check returns an `Outcome`: its findings and what it examined. A check examines a rule only
when a response came back to judge; when a more basic rule already broke on the same response
(ENV-1's envelope, OAI-3/OAI-4's shape under an SDK's text), it says "not judged" instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatconform.checks.common import (
    expect_status,
    finding,
    schema_errors,
    schema_findings,
    short,
)
from chatconform.record import Exchange
from chatconform.verdicts import Finding, Outcome

if TYPE_CHECKING:
    from chatconform.sdk import SdkCall

DONE = "[DONE]"


def request_taken(ex: Exchange) -> Outcome:
    """OAI-1: a request in the OpenAI shape (all four roles, other OpenAI fields) gets 200."""
    return expect_status(ex, "OAI-1", 200)  # no response: a finding, nothing examined


def completion(ex: Exchange, model: str) -> tuple[Outcome, str | None]:
    """OAI-3: 200 with a plain (unwrapped) chat.completion object; returns its text."""
    out = expect_status(ex, "OAI-3", 200)  # no response: a finding, nothing examined
    if out:
        return out, None
    body = ex.json()
    if not isinstance(body, dict):
        return out.add(finding("OAI-3", "a chat.completion JSON object", ex.describe(), ex)), None
    if "success" in body and "data" in body and "choices" not in body:
        got = "an enveloped {success, data} body"
        out = Outcome().not_exercised("OAI-3", None, "not judged: see ENV-1 on this response")
        return out.add(
            finding("ENV-1", "/chat/completions NOT wrapped in the envelope", got, ex)
        ), None
    out.extend(list(schema_findings(body, "ChatCompletion", "OAI-3", ex, "body", "D")))
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else {}
    msg = first.get("message") if isinstance(first, dict) else None
    text = msg.get("content") if isinstance(msg, dict) else None
    if isinstance(first, dict) and first.get("finish_reason") != "stop":
        got = f"finish_reason {first.get('finish_reason')!r}"
        out.append(finding("OAI-3", 'finish_reason "stop"', got, ex, "C"))
    if body.get("model") != model:
        out.append(finding("OAI-3", f"model {model!r}", f"{body.get('model')!r}", ex, "C"))
    return out, text if isinstance(text, str) else None


def chunks(ex: Exchange) -> list[tuple[str, Any]]:
    assert ex.stream is not None
    return [
        (e.data, None if e.data == DONE else data)
        for e, data in zip(ex.stream.events, ex.stream.parsed(), strict=True)
    ]


def completion_stream(ex: Exchange, model: str) -> tuple[Outcome, str | None]:
    """OAI-4: data: chunk frames ending with data: [DONE], one finish_reason, nothing after.

    Returns the text an OpenAI client reads: the delta contents of the chunks before [DONE].
    """
    if ex.status is None or ex.media_type != "text/event-stream" or ex.stream is None:
        got = ex.describe()
        out = Outcome() if ex.status is None else Outcome().saw("OAI-4")
        return out.add(
            finding("OAI-4", "HTTP 200 with Content-Type text/event-stream", got, ex)
        ), None
    out = Outcome().saw("OAI-4")
    if ex.status != 200:
        got = ex.describe()
        return out.add(
            finding("OAI-4", "HTTP 200 with Content-Type text/event-stream", got, ex)
        ), None
    events = ex.stream.events
    named = [e for e in events if e.event_field]
    if named:
        got = f"{len(named)} frame(s) with an event: line (e.g. event: {named[0].type})"
        out.append(finding("OAI-4", "no event: lines", got, ex, "C"))
    cs = chunks(ex)
    done_at = [i for i, (raw, _) in enumerate(cs) if raw == DONE]
    if not done_at:
        got = f"{len(cs)} frames and no [DONE] (stream ended by {ex.stream.ended_by})"
        out.append(finding("OAI-4", "the stream to end with data: [DONE]", got, ex))
    elif done_at[0] != len(cs) - 1 or len(done_at) > 1:
        got = f"{len(cs) - done_at[0] - 1} frame(s) after [DONE]"
        out.append(finding("OAI-4", "nothing after data: [DONE]", got, ex, "C"))
    elif ex.stream.parser.unterminated:
        got = "an unterminated frame after [DONE]"
        out.append(finding("OAI-4", "nothing after data: [DONE]", got, ex, "C"))
    body = cs[: done_at[0]] if done_at else cs
    text_parts: list[str] = []
    finishes: list[int] = []
    ident: tuple[Any, Any, Any] | None = None
    for n, (raw, c) in enumerate(body):
        where = f"chunk {n + 1}"
        if c is None:
            got = f"{where}: {short(raw, 120)!r}"
            out.append(finding("OAI-4", "each data: a chat.completion.chunk JSON", got, ex))
            break
        found = schema_errors(c, "ChatCompletionChunk", "OAI-4", ex, where, "D")
        if found:
            out.extend(found)  # the findings; the stream is counted once, above
            break
        this = (c.get("id"), c.get("created"), c.get("model"))
        if ident is None:
            ident = this
            delta = c["choices"][0].get("delta", {}) if c.get("choices") else {}
            if delta.get("role") != "assistant":
                got = f"first delta {short(delta)}"
                out.append(
                    finding("OAI-4", 'the first delta to carry role "assistant"', got, ex, "C")
                )
        elif this != ident:
            got = f"{where}: id/created/model {this} after {ident}"
            out.append(
                finding("OAI-4", "the same id, created and model on every chunk", got, ex, "C")
            )
        for choice in c.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if isinstance(piece, str):
                text_parts.append(piece)
            if choice.get("finish_reason") is not None:
                finishes.append(n)
                if choice.get("finish_reason") != "stop":
                    got = f"{where}: finish_reason {choice.get('finish_reason')!r}"
                    out.append(finding("OAI-4", 'finish_reason "stop"', got, ex, "C"))
    if not body and done_at:
        got = "data: [DONE] with no chunk before it"
        out.append(finding("OAI-4", "chat.completion.chunk frames before [DONE]", got, ex))
    if body and len(finishes) != 1:
        got = f"{len(finishes)} chunks with a finish_reason"
        out.append(finding("OAI-4", "exactly one chunk with a finish_reason", got, ex, "C"))
    elif finishes and finishes[0] != last_with_choices(body):
        got = f"finish_reason on chunk {finishes[0] + 1} of {len(body)}"
        out.append(finding("OAI-4", "finish_reason on the last chunk before [DONE]", got, ex, "C"))
    if ex.stream.ended_by not in ("eof",):
        got = f"stream ended by {ex.stream.ended_by} ({ex.error})"
        out.append(finding("OAI-4", "the server to close the stream after [DONE]", got, ex))
    return out, "".join(text_parts)


def last_with_choices(body: list[tuple[str, Any]]) -> int:
    """Index of the last chunk that is not OpenAI's usage chunk (`"choices": []` with `usage`,
    sent after the finish chunk when a request asks `stream_options.include_usage`)."""
    n = len(body) - 1
    while n > 0:
        c = body[n][1]
        if not (isinstance(c, dict) and c.get("choices") == [] and "usage" in c):
            break
        n -= 1
    return n


def same_text(rule: str, a_name: str, a: str | None, b_name: str, b: str | None) -> Outcome:
    """OAI-6: two ways of asking give the same assistant text (examined when both came back)."""
    out = Outcome()
    if a is not None and b is not None:
        out.saw(rule)
    if a is not None and a == b:
        return out
    want = f"{b_name} text equal to {a_name} text {short(a, 150)!r}"
    return out.add(finding(rule, want, f"{short(b, 150)!r}"))


def sdk_unavailable(language: str, reason: str) -> Outcome:
    """OAI-5: an SDK that cannot run here leaves its two clauses not exercised, saying why."""
    out = Outcome()
    for mode in ("plain", "stream"):
        out.not_exercised("OAI-5", f"{language}-{mode}", reason)
    return out


def sdk_agrees(call: SdkCall, model: str) -> Outcome:
    """OAI-5: an official SDK's completion succeeded, and the text it handed its caller equals
    chatconform's own parse of the very bytes that SDK parsed (the tee's copy), never the text of
    another request. Those bytes are judged by OAI-3 (plain) or OAI-4 (streamed) too: when they
    break a D part of those, that is the failure, and this clause is not judged on them."""
    clause = f"{call.language}-{call.mode}"
    streamed = call.mode == "stream"
    what = f"the openai {call.language} SDK's {'streamed' if streamed else 'plain'} completion"
    ex = call.exchange
    out = Outcome()
    if ex is None:  # no copy of any response: the SDK never sent, or our tee broke
        got = call.error or "no request was made"
        return out.add(
            Finding("OAI-5", f"{what} to send its request", got, kind="harness", clause=clause)
        )
    if ex.not_sent or ex.status is None:  # refused by the run's budget, or no response came
        got = ex.describe() + (f"; the SDK said {call.error}" if call.error else "")
        return out.add(finding("OAI-5", f"{what} to succeed", got, ex, clause=clause))
    parsed, text = completion_stream(ex, model) if streamed else completion(ex, model)
    out += parsed
    basic = next((f for f in parsed if f.effective_level() == "D"), None)
    if basic is not None:
        why = f"not judged: see {basic.rule} on the bytes the {call.language} SDK parsed"
        return out.not_exercised("OAI-5", clause, why)
    out.saw("OAI-5", clause)
    in_bytes = f"the text in the bytes it parsed, {short(text, 150)!r}"
    if call.error:
        return out.add(
            finding(
                "OAI-5", f"{what} to succeed and give {in_bytes}", call.error, ex, clause=clause
            )
        )
    if call.text != text:
        got = f"{short(call.text, 150)!r}"
        out.add(finding("OAI-5", f"{what} to give its caller {in_bytes}", got, ex, clause=clause))
    return out
