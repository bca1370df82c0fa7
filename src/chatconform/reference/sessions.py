"""Session API handlers: create, get, end, post a message (plain or streamed), list messages.

Checks run in the contract's order: auth (401), scope (403), body/query (400), existence (404),
state (409).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from chatconform.reference.auth import READ, WRITE, Principal
from chatconform.reference.clock import now_iso
from chatconform.reference.context import Context, ctx_of
from chatconform.reference.jsonio import envelope
from chatconform.reference.problems import ApiError, validation_error
from chatconform.reference.session_stream import session_frames
from chatconform.reference.store import SessionRow, Store
from chatconform.reference.turns import new_id
from chatconform.reference.validate import (
    MAX_CONTENT,
    is_unicode,
    json_object,
    optional_bool,
    read_body,
)
from chatconform.reference.wire import deliver

SSE_TYPE = "text/event-stream; charset=utf-8"


def _session_not_found() -> ApiError:
    return ApiError(404, "session_not_found", "no such session")


async def _own_session(
    ctx: Context, principal: Principal, session_id: str, cross_ok: bool = False
) -> SessionRow:
    row = await ctx.db.read(Store.get_session, session_id)
    if row is None or (row.org_id != principal.org_id and not cross_ok):
        raise _session_not_found()
    return row


async def create_session(request: Request) -> Response:
    ctx = ctx_of(request)
    sw = ctx.settings.switches
    principal = ctx.principal(request, WRITE)
    if_invalid = None
    if sw.fault_is("invalid-json-accepted"):
        if_invalid = {"agentId": ctx.own_agent(principal)}  # fault: invalid JSON gets a session
    body = await json_object(request, sw, required=True, if_invalid=if_invalid)
    if "agentId" not in body:
        raise validation_error("agentId", "is required")
    agent_id = body["agentId"]
    if sw.fault_is("nonstring-agent-500"):
        agent_id = agent_id.strip()  # fault: crashes on a non-string (AttributeError -> 500)
    if not isinstance(agent_id, str):
        raise validation_error("agentId", "must be a string")
    if not agent_id:
        raise validation_error("agentId", "must not be empty")
    draft = optional_bool(body, "draftMode", default=False)
    owner = ctx.tenants.agents().get(agent_id)
    if owner is None or owner[0] != principal.org_id:
        raise ApiError(404, "agent_not_found", "no such agent")
    if not owner[1] and not draft:
        raise ApiError(409, "no_published_version",
                       "the agent has no published version; use draftMode: true")  # fmt: skip
    row = SessionRow(new_id("ses_"), principal.org_id, agent_id, draft, "active", now_iso(), None)
    await ctx.db.write(Store.create_session, row)
    return envelope(row.public(), sw, status=201)


async def get_session(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = ctx.principal(request, READ)
    session_id = request.path_params["session_id"]
    rate_headers = ctx.limiter.take(f"{principal.key_id}|{session_id}")
    cross = ctx.settings.switches.fault_is("cross-tenant-read")
    row = await _own_session(ctx, principal, session_id, cross_ok=cross)
    response = envelope(row.public(), ctx.settings.switches)
    response.headers.update(rate_headers)
    return response


async def end_session(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = ctx.principal(request, WRITE)
    if ctx.settings.switches.has("lenient"):
        await read_body(request)  # lenient: whatever body came is ignored
    else:
        await json_object(request, ctx.settings.switches, required=False)
    row = await _own_session(ctx, principal, request.path_params["session_id"])
    ended = await ctx.db.write(Store.end_session, row.id, now_iso())
    if ended is None:
        raise _session_not_found()
    return envelope(ended.public(), ctx.settings.switches)


async def messages(request: Request) -> Response:
    if request.method == "POST":
        return await post_message(request)
    return await list_messages(request)


def _content(body: dict[str, Any], ctx: Context) -> str:
    sw = ctx.settings.switches
    if "content" not in body:
        err = validation_error("content", "is required")
        if sw.fault_is("missing-errors-array"):
            err.errors = None
        raise err
    content = body["content"]
    if not isinstance(content, str):
        raise validation_error("content", "must be a string")
    if not content:
        raise validation_error("content", "must not be empty")
    if len(content) > MAX_CONTENT:
        if sw.fault_is("long-content-500"):
            raise ApiError(500, "internal_error", "the server failed to process the request")
        raise validation_error("content", f"must be at most {MAX_CONTENT} characters")
    if not is_unicode(content):
        raise validation_error("content", "must be valid Unicode text")
    return content


async def post_message(request: Request) -> Response:
    t0 = asyncio.get_running_loop().time()
    ctx = ctx_of(request)
    sw = ctx.settings.switches
    principal = ctx.principal(request, WRITE, posting=True)
    body = await json_object(request, sw, required=True)
    content = _content(body, ctx)
    stream = optional_bool(body, "stream", default=False)
    row = await _own_session(ctx, principal, request.path_params["session_id"])
    if row.status != "active" and not sw.fault_is("ended-accepts"):
        raise ApiError(409, "session_ended", "the session has ended")
    if not ctx.turns.try_begin(row.id):
        raise ApiError(409, "session_busy", "a turn is already running in this session",
                       headers={"Retry-After": "1"})  # fmt: skip
    queue = ctx.turns.start(row.id, content, t0, streamed=stream)
    if stream:
        media = "application/json" if sw.fault_is("wrong-content-type") else SSE_TYPE
        frames = session_frames(queue, row.id, ctx.settings)
        body_iter = deliver(frames, sw, buffered=sw.fault_is("buffered"))
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Content-Type": media}
        return StreamingResponse(body_iter, headers=headers)
    while True:
        event = await queue.get()
        if event.kind == "done":
            return envelope({"messages": event.payload["messages"]}, sw)
        if event.kind == "error":
            raise ApiError(500, "internal_error", event.payload["detail"])


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return 50
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise validation_error("limit", "must be an integer from 1 to 100")
    return int(raw)


def _encode_cursor(session_id: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{session_id}|{seq}".encode()).decode().rstrip("=")


def _cursor(request: Request, session_id: str) -> int | None:
    raw = request.query_params.get("cursor")
    if raw is None:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        owner, _, seq = text.rpartition("|")
        if owner != session_id or not seq.isascii() or not seq.isdigit():
            raise ValueError(raw)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise validation_error("cursor", "is not a cursor this API returned") from exc


async def list_messages(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = ctx.principal(request, READ)
    session_id = request.path_params["session_id"]
    limit = _limit(request)
    after = _cursor(request, session_id)
    row = await _own_session(ctx, principal, session_id)
    newest_first = ctx.settings.switches.fault_is("history-newest-first")
    items, last = await ctx.db.read(Store.list_messages, row.id, after, limit, newest_first)
    cursor = _encode_cursor(row.id, last) if last is not None else None
    return envelope(items, ctx.settings.switches, pagination={"nextCursor": cursor, "limit": limit})
