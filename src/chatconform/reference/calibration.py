"""``--calibration``'s streamed completion: the least work per content delta, and its send time.

Every frame is encoded before the schedule starts (the scripted reply is known at receipt), so
what is left per delta is the sleep to its due time, one entry in the send log and one write,
handed to the ASGI server past the app's own send wrappers (``CatchAll`` leaves the send it was
given in the scope under ``RAW_SEND``). Receipt, due and send times are on ``time.monotonic()``
(see :func:`clock`), so the send log is exact to the microsecond, and each delta is woken by a
timerfd (``reference.precise``), not by the loop's millisecond timers. The bytes are the ones the
normal path sends with no variation or fault switched on (the same encoder); only the per-event
path is shorter.
"""

from __future__ import annotations

import asyncio
from time import monotonic

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from chatconform.reference.clock import delta_deadline
from chatconform.reference.precise import waker
from chatconform.reference.sendlog import SendLog

RAW_SEND = "chatconform.raw_send"
RECEIVED = "chatconform.received"  # clock() when the app was handed the request (CatchAll)
MIN_SLEEP_S = 0.001  # uvloop rounds a shorter timer to "at once": a busy spin, not a sleep


def clock() -> float:
    """The calibration clock: ``time.monotonic()``, to the microsecond. uvloop's ``loop.time()``
    is libuv's millisecond clock, cached per loop iteration: too coarse to calibrate with."""
    return monotonic()


async def sleep_until_precise(due: float) -> None:
    """Sleep until ``due`` on :func:`clock`, never less: woken by a timerfd (``precise``) where
    there is one, to tens of microseconds. Else on the loop's timers, which count whole
    milliseconds (uvloop's from its cached clock, so one may fire early: then sleep again for
    what is left, at least a millisecond, so a wait is never a spin): about 1 ms late."""
    w = waker()
    if w is not None:
        await w.sleep_until(due)
        return
    left = due - monotonic()
    while left > 0:
        await asyncio.sleep(max(left, MIN_SLEEP_S))
        left = due - monotonic()


class CalibrationStream(StreamingResponse):
    """``head`` at once, then ``deltas[i]`` at ``t0 + ttft + i * itl``, then ``tail``."""

    def __init__(
        self,
        head: bytes,
        deltas: list[bytes],
        tail: bytes,
        t0: float,
        ttft_ms: int,
        itl_ms: int,
        log: SendLog | None,
        headers: dict[str, str],
    ) -> None:
        super().__init__(iter(()), headers=headers)
        self.head, self.deltas, self.tail = head, deltas, tail
        self.t0, self.ttft_ms, self.itl_ms, self.log = t0, ttft_ms, itl_ms, log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code,
                 "headers": self.raw_headers}  # fmt: skip
        await send(start)
        raw = scope.get(RAW_SEND, send)
        await raw({"type": "http.response.body", "body": self.head, "more_body": True})
        log, t0, previous = self.log, self.t0, None
        for i, frame in enumerate(self.deltas):
            due = delta_deadline(t0, self.ttft_ms, self.itl_ms, i)
            await sleep_until_precise(due)
            if log is not None:  # the instant this delta is handed to the ASGI server
                now = monotonic()
                log.delta(t0, due, now, previous)
                previous = now
            await raw({"type": "http.response.body", "body": frame, "more_body": True})
        await raw({"type": "http.response.body", "body": self.tail, "more_body": False})
