"""``POST /chat/completions``: the OpenAI chat completions shape over the scripted agent.

Stateless: the reply is the session API's scripted reply to the last user message, on the same
latency schedule (first content delta at receipt + ttft, then one every itl).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from chatconform.reference.agent import plan_turn
from chatconform.reference.auth import WRITE, Principal
from chatconform.reference.calibration import (
    RECEIVED,
    CalibrationStream,
    clock,
    sleep_until_precise,
)
from chatconform.reference.clock import delta_deadline, sleep_until
from chatconform.reference.context import Context, ctx_of
from chatconform.reference.faults import Switches
from chatconform.reference.jsonio import json_response
from chatconform.reference.problems import ApiError, validation_error
from chatconform.reference.settings import Settings
from chatconform.reference.validate import is_unicode, json_object, optional_bool
from chatconform.reference.wire import FrameEncoder, deliver

ROLES = ("system", "user", "assistant", "tool")


def _text(message: dict[str, Any], field: str, lenient: bool) -> str:
    """The text of a message's content: a string, text parts, or (assistant only) null/absent.

    ``lenient`` (a variation): any message may lack content, and parts that are not text are
    skipped, as many OpenAI-compatible servers do.
    """
    content = message.get("content")
    if content is None and (lenient or message.get("role") == "assistant"):
        return ""
    if isinstance(content, str):
        if not is_unicode(content):
            raise validation_error(field, "must be valid Unicode text")
        return content
    if isinstance(content, list):
        texts = []
        for n, part in enumerate(content):
            if not (isinstance(part, dict) and isinstance(part.get("text"), str)):
                if lenient:
                    continue
                raise validation_error(f"{field}[{n}]", "must be a text content part")
            texts.append(part["text"])
        return "".join(texts)
    if lenient:
        return ""
    raise validation_error(field, "must be a string")


def _as_list(items: Any) -> list[Any]:
    """A fault: a non-array ``messages`` taken as one message (a string as a user message)."""
    if isinstance(items, dict):
        return [items]
    text = items if isinstance(items, str) else json.dumps(items)
    return [{"role": "user", "content": text}]


def _messages(body: dict[str, Any], switches: Switches) -> list[tuple[str, str]]:
    lenient = switches.has("lenient")
    if "messages" not in body:
        raise validation_error("messages", "is required")
    items = body["messages"]
    if not isinstance(items, list) and switches.fault_is("nonarray-messages-accepted"):
        items = _as_list(items)
    if not isinstance(items, list):
        raise validation_error("messages", "must be an array")
    if not items:
        raise validation_error("messages", "must not be empty")
    out: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            raise validation_error(where, "must be an object")
        role = item.get("role")
        if role not in ROLES:
            raise validation_error(f"{where}.role", f"must be one of {', '.join(ROLES)}")
        tool_call_id = item.get("tool_call_id")
        if tool_call_id is not None and not isinstance(tool_call_id, str) and not lenient:
            raise validation_error(f"{where}.tool_call_id", "must be a string")
        out.append((role, _text(item, f"{where}.content", lenient)))
    return out


def _model_field(body: dict[str, Any], ctx: Context, principal: Principal) -> str:
    if "model" not in body and ctx.settings.switches.fault_is("missing-model-accepted"):
        return ctx.own_agent(principal)  # fault: no model, the organization's agent answers
    if "model" not in body:
        raise validation_error("model", "is required")
    model = body["model"]
    if not isinstance(model, str) or not model:
        raise validation_error("model", "must be a non-empty string")
    return model


def _check_model(model: str, ctx: Context, principal: Principal) -> None:
    """The model must be a published agent of the caller's organization."""
    owner = ctx.tenants.agents().get(model)
    if owner is None or owner[0] != principal.org_id:
        status = 404 if ctx.settings.switches.fault_is("unknown-model-404") else 400
        raise ApiError(status, "model_not_found", "the model is not an agent of this organization")
    if not owner[1]:
        raise ApiError(409, "no_published_version", "the agent has no published version")


def _chunk(base: dict[str, Any], delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def _stream(
    base: dict[str, Any],
    deltas: list[str],
    t0: float,
    settings: Settings,
) -> AsyncIterator[bytes]:
    sw = settings.switches
    enc = FrameEncoder(sw)
    name = "chunk" if sw.fault_is("completion-event-lines") else None
    yield enc.keepalive()
    yield enc.frame(name, _chunk(base, {"role": "assistant", "content": ""}, None))
    for i, delta in enumerate(deltas):
        due = delta_deadline(t0, settings.ttft_ms, settings.itl_ms, i)
        await sleep_until(due)
        yield enc.keepalive() + enc.frame(name, _chunk(base, {"content": delta}, None))
    yield enc.keepalive() + enc.frame(name, _chunk(base, {}, "stop"))
    if not sw.fault_is("completion-no-done"):
        yield enc.keepalive() + enc.frame(None, "[DONE]")


_MARK = "\x00chatconform-delta\x00"
_MARK_JSON = json.dumps(_MARK).encode()  # as the encoder writes it: "\u0000chatconform...


def delta_frames(enc: FrameEncoder, base: dict[str, Any], deltas: list[str]) -> list[bytes]:
    """``enc.frame(None, _chunk(base, {"content": d}, None))`` for each delta, byte for byte,
    from one encoded template (the frame around a marker content) and each delta's own JSON
    string: a request's frames cost one encoding, not one per delta. Any delta the template
    cannot carry as its encoder would (one that is not UTF-8 encodable) is encoded in full."""

    def whole(content: str) -> bytes:  # the frame as the encoder writes it, in full
        return enc.frame(None, _chunk(base, {"content": content}, None))

    try:  # a base the encoder must escape as ASCII would escape the deltas too
        json.dumps(base, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return [whole(d) for d in deltas]
    template = whole(_MARK)
    if template.count(_MARK_JSON) != 1:
        return [whole(d) for d in deltas]
    before, after = template.split(_MARK_JSON)
    out = []
    for d in deltas:
        try:
            out.append(before + json.dumps(d, ensure_ascii=False).encode("utf-8") + after)
        except UnicodeEncodeError:
            out.append(whole(d))
    return out


def _calibration_stream(
    base: dict[str, Any], deltas: list[str], t0: float, ctx: Context, headers: dict[str, str]
) -> CalibrationStream:
    """The same frames as ``_stream`` with no switch on, encoded before the schedule starts."""
    enc = FrameEncoder(ctx.settings.switches)
    head = enc.frame(None, _chunk(base, {"role": "assistant", "content": ""}, None))
    frames = delta_frames(enc, base, deltas)
    tail = enc.frame(None, _chunk(base, {}, "stop")) + enc.frame(None, "[DONE]")
    s = ctx.settings
    return CalibrationStream(head, frames, tail, t0, s.ttft_ms, s.itl_ms, ctx.sendlog, headers,
                             base["id"])  # fmt: skip


async def create_completion(request: Request) -> Response:
    ctx = ctx_of(request)
    if ctx.settings.calibration:
        t0 = request.scope.get(RECEIVED) or clock()
    else:
        t0 = asyncio.get_running_loop().time()
    sw = ctx.settings.switches
    principal = ctx.principal(request, WRITE)
    body = await json_object(request, sw, required=True)
    model = _model_field(body, ctx, principal)
    history = _messages(body, sw)
    if sw.has("lenient"):
        stream = body.get("stream") is True  # lenient: any other value means no stream
    else:
        stream = optional_bool(body, "stream", default=False, allow_null=True)
        user = body.get("user")
        if user is not None and not isinstance(user, str):
            raise validation_error("user", "must be a string")
    _check_model(model, ctx, principal)
    last_user = next((text for role, text in reversed(history) if role == "user"), "")
    plan = plan_turn(last_user, ctx.settings.tokens, ctx.settings.reply_nonce())
    base = {"id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}  # fmt: skip
    if stream:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                   "Content-Type": "text/event-stream; charset=utf-8"}  # fmt: skip
        if ctx.settings.calibration:  # no switches: frames encoded now, no delivery layer
            return _calibration_stream(base, plan.deltas, t0, ctx, headers)
        frames = _stream(base, plan.deltas, t0, ctx.settings)
        return StreamingResponse(deliver(frames, sw), headers=headers)
    s = ctx.settings
    last = delta_deadline(t0, s.ttft_ms, s.itl_ms, len(plan.deltas) - 1)
    await (sleep_until_precise(last) if s.calibration else sleep_until(last))
    prompt_tokens = sum(len(text.split()) for _, text in history) or 1
    answer = {
        **base,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": plan.reply},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(plan.deltas),
                  "total_tokens": prompt_tokens + len(plan.deltas)},
    }  # fmt: skip
    return json_response(answer, sw)
