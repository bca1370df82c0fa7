"""``--calibration``'s streamed completion: the least work per content delta, and its send time.

Every frame is encoded before the schedule starts (the scripted reply is known at receipt), so
what is left per delta is one entry in the send log and one write at its due time. On uvicorn's
httptools protocol (uvloop and httptools installed) the stamped protocol (:func:`stamped_protocol`)
stamps each request when the loop reads its first bytes (``RECEIVED``, what the injected TTFT counts
from) and hands its own send to ``CatchAll`` (``CYCLE_SEND``, weakly), and each delta is written to
the connection's transport from the timer's callback (:class:`_Emission`, ``reference.precise``'s
timerfd): no task wake-up, no ASGI send per delta. Elsewhere each delta is awaited and handed to
the ASGI server's send (``RAW_SEND``, past the app's own wrappers). Receipt, due and send times are
on ``time.monotonic()`` (see :func:`clock`), so the send log is exact to the microsecond. The bytes
are the ones the normal path sends with no variation or fault switched on (the same encoder, via a
template checked byte for byte in the tests); only the per-event path is shorter.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from time import monotonic
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from chatconform.reference.clock import delta_deadline
from chatconform.reference.precise import Waker, waker
from chatconform.reference.sendlog import SendLog

RAW_SEND = "chatconform.raw_send"
#: the ASGI server's own send (a weak reference), set by the stamped protocol: CatchAll takes it
#: as RAW_SEND, under Starlette's ServerErrorMiddleware wrapper of it
CYCLE_SEND = "chatconform.cycle_send"
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
        response_id: str | None = None,
    ) -> None:
        super().__init__(iter(()), headers=headers)
        self.response_id = response_id
        self.head, self.deltas, self.tail = head, deltas, tail
        self.t0, self.ttft_ms, self.itl_ms, self.log = t0, ttft_ms, itl_ms, log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code,
                 "headers": self.raw_headers}  # fmt: skip
        await send(start)
        raw = scope.get(RAW_SEND, send)
        await raw({"type": "http.response.body", "body": self.head, "more_body": True})
        w, write = waker(), chunk_writer(raw)
        if w is not None and write is not None:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            emit = _Emission(self, write, w, done)
            w.call_at(emit.due, emit)
            await done
        else:
            log, t0, previous = self.log, self.t0, None
            for i, frame in enumerate(self.deltas):
                due = delta_deadline(t0, self.ttft_ms, self.itl_ms, i)
                await sleep_until_precise(due)
                if log is not None:  # the instant this delta is handed to the ASGI server
                    now = monotonic()
                    log.delta(t0, due, now, previous, response_id=self.response_id)
                    previous = now
                await raw({"type": "http.response.body", "body": frame, "more_body": True})
        await raw({"type": "http.response.body", "body": self.tail, "more_body": False})


class _Emission:
    """A calibration stream's content deltas, each written from the timerfd's callback at its
    due time (no task wake-up, no awaits per delta); ``done`` resolves after the last, or at
    once when the client has gone."""

    __slots__ = ("done", "due", "i", "previous", "stream", "waker", "write")

    def __init__(self, stream: CalibrationStream, write: Callable[[bytes], bool], w: Waker,
                 done: asyncio.Future[None]) -> None:  # fmt: skip
        self.stream, self.write, self.waker, self.done = stream, write, w, done
        self.i, self.previous = 0, None
        self.due = delta_deadline(stream.t0, stream.ttft_ms, stream.itl_ms, 0)

    def __call__(self) -> None:
        done, s = self.done, self.stream
        if done.done():  # the response's task was cancelled
            return
        try:
            i = self.i
            if i >= len(s.deltas):
                done.set_result(None)
                return
            now = monotonic()
            if s.log is not None:  # the instant this delta is handed to the transport
                s.log.delta(s.t0, self.due, now, self.previous, True, s.response_id)
            if not self.write(s.deltas[i]):  # the client has gone: nothing more to send
                done.set_result(None)
                return
            self.previous, self.i = now, i + 1
            if self.i == len(s.deltas):
                done.set_result(None)
                return
            self.due = delta_deadline(s.t0, s.ttft_ms, s.itl_ms, self.i)
            self.waker.call_at(self.due, self)
        except Exception as exc:  # surfaced in the response's task, as the awaiting path would
            done.set_exception(exc)


def chunk_writer(send: Send) -> Callable[[bytes], bool] | None:
    """A direct writer of body chunks for a response already started, chunked, on uvicorn's
    httptools protocol (``send`` its cycle's own, ``RAW_SEND``): each chunk framed as uvicorn
    frames it and written to the transport at once, False once the client has gone. None for
    any other server or framing: the caller then sends through ``send``. Flow control is not
    waited on: a calibration reply is a few kilobytes (``--tokens`` deltas)."""
    cycle: Any = getattr(send, "__self__", None)
    if cycle is None or type(cycle).__module__ != "uvicorn.protocols.http.httptools_impl":
        return None
    if not (cycle.response_started and cycle.chunked_encoding) or cycle.response_complete:
        return None
    transport = cycle.transport

    def write(frame: bytes) -> bool:
        if cycle.disconnected or transport.is_closing():
            return False
        transport.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        return True

    return write


def stamped_protocol(http: str) -> type[asyncio.Protocol] | str:
    """uvicorn's ``http`` protocol for ``--calibration``: httptools' with each request stamped
    (:data:`RECEIVED`) when the event loop read its first bytes, before they are parsed and the
    app's task waits its turn on the loop; ``http`` itself where httptools is not in use."""
    if http != "httptools":
        return http
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class StampedHttpToolsProtocol(HttpToolsProtocol):
        _read_at = 0.0

        def data_received(self, data: bytes) -> None:
            self._read_at = monotonic()
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope[RECEIVED] = self._read_at  # type: ignore[literal-required]

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            cycle = getattr(self, "cycle", None)
            if cycle is not None and cycle.scope is self.scope:  # weak: the scope holds no cycle
                self.scope[CYCLE_SEND] = weakref.WeakMethod(cycle.send)  # type: ignore[literal-required]

    return StampedHttpToolsProtocol
