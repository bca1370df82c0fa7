"""The event stream of a streamed session turn (SSE-1..8), with its faults.

Every frame's ``data`` is an AuditEvent. The terminal ``done`` AuditEvent also carries
``messages`` at top level (SSE-6); an ``error`` one carries the problem fields at top level.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

from chatconform.reference.clock import epoch_ms
from chatconform.reference.problems import TYPE_BASE
from chatconform.reference.settings import Settings
from chatconform.reference.turns import Event
from chatconform.reference.wire import FrameEncoder


class _Audit:
    """Numbers frames: seq from 1 (+1 each), non-decreasing tsMs, unique ids."""

    def __init__(self, session_id: str, seq_gap: bool) -> None:
        self.session_id = session_id
        self.trace_id = uuid.uuid4().hex
        self._seq = 0
        self._ts = 0
        self._seq_gap = seq_gap

    def event(self, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        self._seq += 1
        if self._seq_gap and self._seq == 3:
            self._seq += 1  # fault seq-gap: 1, 2, 4, 5, …
        self._ts = max(self._ts, epoch_ms())
        return {
            "id": "evt_" + uuid.uuid4().hex,
            "conversationId": self.session_id,
            "seq": self._seq,
            "tsMs": self._ts,
            "channel": "chat",
            "eventType": event_type,
            "payload": payload,
            "traceId": self.trace_id,
        }


def _terminal(audit: _Audit, event: Event) -> dict[str, Any]:
    if event.kind == "done":
        return {**audit.event("done", event.payload), "messages": event.payload["messages"]}
    problem = {
        "type": TYPE_BASE + event.payload["code"],
        "title": "Internal Server Error",
        "status": event.payload["status"],
        "detail": event.payload["detail"],
        "code": event.payload["code"],
    }
    return {**audit.event("error", problem), **problem}


async def session_frames(
    queue: asyncio.Queue[Event], session_id: str, settings: Settings
) -> AsyncIterator[bytes]:
    """The frames of one turn, read from its queue, as bytes (one item per frame)."""
    sw = settings.switches
    enc = FrameEncoder(sw)
    audit = _Audit(session_id, sw.fault_is("seq-gap"))
    t_start = epoch_ms()
    yield enc.keepalive()
    deltas = 0
    while True:
        event = await queue.get()
        if event.kind in ("done", "error"):
            break
        name = event.kind
        if name == "agent_message" and sw.fault_is("event-name-mismatch"):
            name = "message"
        yield enc.keepalive() + enc.frame(name, audit.event(event.kind, event.payload))
        if event.kind == "agent_message":
            deltas += 1
            if deltas == 1 and sw.has("extra"):
                latency = audit.event("latency", {"ttftMs": epoch_ms() - t_start})
                yield enc.keepalive() + enc.frame("latency", latency)
    if sw.fault_is("no-terminal") or sw.fault_once("no-terminal-once"):
        return
    last = not (sw.fault_is("frame-after-done") or sw.fault_is("two-terminals"))
    blank = not (last and sw.fault_is("no-final-blank-line"))
    yield enc.keepalive() + enc.frame(event.kind, _terminal(audit, event), blank_line=blank)
    if sw.fault_is("two-terminals"):
        yield enc.frame(event.kind, _terminal(audit, event))
    if sw.fault_is("frame-after-done"):
        messages = event.payload.get("messages") or [{"id": "msg_" + uuid.uuid4().hex}]
        late = {"messageId": messages[-1]["id"], "delta": " …"}
        yield enc.frame("agent_message", audit.event("agent_message", late))
