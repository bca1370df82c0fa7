"""Running one turn of a session: the user's message, the agent's events on schedule, and storage.

Storage on a dropped stream (MSG-7): the user message is committed as the turn starts. The turn
runs in its own asyncio task, which a client disconnect does not cancel (the response only reads
the task's queue). When the last delta is due, all the agent's messages are committed in ONE
transaction, and only then is ``done`` emitted. So a reply in history is always complete (never
partial, never duplicated), whether or not the client stayed; a ``kill -9`` mid-turn leaves the
user message alone. A session runs one turn at a time: a second post meanwhile gets 409
``session_busy`` (MSG-6).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from chatconform.reference.agent import AgentFailure, TurnPlan, plan_turn
from chatconform.reference.clock import delta_deadline, now_iso, sleep_until
from chatconform.reference.settings import Settings
from chatconform.reference.store import AsyncStore, Store

log = logging.getLogger("chatconform.reference")


@dataclass(frozen=True)
class Event:
    """One thing the agent did: ``kind`` is an event type (``done``/``error`` end the turn)."""

    kind: str
    payload: dict[str, Any]


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _message(session_id: str, role: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"id": new_id("msg_"), "sessionId": session_id, "role": role, "content": content,
            "createdAt": now_iso(), **extra}  # fmt: skip


class TurnManager:
    """Per-session busy flags and the running turn tasks (awaited at shutdown)."""

    def __init__(self, db: AsyncStore, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def try_begin(self, session_id: str) -> bool:
        """Claim the session for one turn; False if a turn is already running."""
        if session_id in self._busy:
            return False
        self._busy.add(session_id)
        return True

    def start(
        self, session_id: str, content: str, t0: float, streamed: bool
    ) -> asyncio.Queue[Event]:
        """Run a claimed turn in the background; its events arrive on the returned queue."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        task = asyncio.create_task(self._run(session_id, content, t0, streamed, queue))
        self._tasks.add(task)

        def finished(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            self._busy.discard(session_id)

        task.add_done_callback(finished)
        return queue

    async def drain(self, timeout: float) -> None:
        """Let running turns finish (and store) before shutdown."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def _run(
        self, session_id: str, content: str, t0: float, streamed: bool, queue: asyncio.Queue[Event]
    ) -> None:
        try:
            user = _message(session_id, "user", content)
            # The user message commits while the agent starts, so an fsync never delays the ttft.
            saving = asyncio.ensure_future(self._db.write(Store.add_messages, session_id, [user]))
            try:
                plan = plan_turn(content, self._settings.tokens, self._settings.reply_nonce())
                produced = await self._agent(session_id, plan, t0, queue)
            finally:
                await saving
            stored = produced
            if streamed and self._settings.switches.fault_is("history-missing-assistant"):
                stored = [m for m in produced if m["role"] != "assistant"]
            await self._db.write(Store.add_messages, session_id, stored)
            queue.put_nowait(Event("done", {"messages": [user, *produced]}))
        except Exception as exc:
            if isinstance(exc, AgentFailure):
                log.info("turn failed on request in session %s", session_id)
            else:
                log.exception("turn failed in session %s", session_id)
            detail = "the agent failed to complete the turn"
            queue.put_nowait(
                Event("error", {"status": 500, "code": "internal_error", "detail": detail})
            )

    async def _agent(
        self, session_id: str, plan: TurnPlan, t0: float, queue: asyncio.Queue[Event]
    ) -> list[dict[str, Any]]:
        produced: list[dict[str, Any]] = []
        if plan.kb_query is not None:
            queue.put_nowait(
                Event("kb_retrieval", {"query": plan.kb_query, "chunks": plan.kb_chunks})
            )
        if plan.tool is not None:
            call_id = new_id("call_")
            call = {"id": call_id, "name": plan.tool.name, "arguments": plan.tool.arguments}
            produced.append(_message(session_id, "assistant", "", toolCalls=[call]))
            queue.put_nowait(Event("tool_call", {"toolCallId": call_id, "name": plan.tool.name,
                                                 "arguments": plan.tool.arguments,
                                                 "output": plan.tool.output}))  # fmt: skip
            produced.append(_message(session_id, "tool", json.dumps(plan.tool.output),
                                     toolCallId=call_id))  # fmt: skip
        reply_id = new_id("msg_")
        s = self._settings
        for i, delta in enumerate(plan.deltas):
            await sleep_until(delta_deadline(t0, s.ttft_ms, s.itl_ms, i))
            queue.put_nowait(Event("agent_message", {"messageId": reply_id, "delta": delta}))
        reply = _message(session_id, "assistant", plan.reply)
        reply["id"] = reply_id
        if plan.kb_chunks:
            reply["knowledge"] = plan.kb_chunks
        produced.append(reply)
        return produced
