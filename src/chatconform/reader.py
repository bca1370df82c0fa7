"""Where the conformance client reads a response (the load users read theirs through
``chatconform.load.h1reader``, into the same Exchange and the same SSE parser).

`read_exchange` sends one built request and fills an Exchange (record.py) as bytes arrive: status,
headers, then either the event stream, parsed incrementally by the project's one SSE parser and
stamped with each read's arrival time, or the body up to the byte cap. Every exchange is bounded
as a whole, headers included: httpx bounds each read, not their sum, so a watchdog ends an exchange
that outlives `Limits.stream_timeout` (a server that drips its headers a byte at a time cannot hold
the caller). In plain threads the watchdog shuts the connection's socket down; under gevent (the
load users, whose keep-alive connections are reused and have no fresh socket to hand over) it
raises a `gevent.Timeout` in the reading greenlet, wherever it is blocked.

So a verdict and a latency figure never disagree about a stream: both come from one Exchange,
parsed once by the project's one SSE parser (``record.StreamRecord``).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from chatconform.record import Exchange, StreamRecord
from chatconform.target import Limits

WATCHDOG_SLACK_S = 0.25  # after the deadline, so a stream that keeps talking is cut by the loop


class Watchdog(Protocol):
    fired: bool

    def trace(self, name: str, info: dict[str, Any]) -> None: ...

    def owns(self, exc: BaseException) -> bool: ...

    def cancel(self) -> None: ...


class SocketWatchdog:
    """Shuts the exchange's socket down when the deadline passes (threads; fresh connections).

    httpx's trace hook hands over the connection's socket when it connects; a reused keep-alive
    connection hands over nothing, so callers that use this one disable keep-alive.
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._sock: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, name: str, info: dict[str, Any]) -> None:
        if name == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            if stream is not None:
                self._sock = stream.get_extra_info("socket")

    def _fire(self) -> None:
        self.fired = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def owns(self, exc: BaseException) -> bool:
        return False

    def cancel(self) -> None:
        self._timer.cancel()


class GreenletWatchdog:
    """Raises a gevent.Timeout in the reading greenlet at the deadline (any connection, reused too)."""

    def __init__(self, seconds: float) -> None:
        import gevent

        self.fired = False
        self._timeout = gevent.Timeout(seconds)
        self._timeout.start()

    def trace(self, name: str, info: dict[str, Any]) -> None:
        return None

    def owns(self, exc: BaseException) -> bool:
        if exc is self._timeout:
            self.fired = True
            return True
        return False

    def cancel(self) -> None:
        self._timeout.close()


def under_gevent() -> bool:
    """True in a process whose sockets gevent has monkey-patched (Locust's)."""
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return bool(monkey.is_module_patched("socket"))


def watchdog(seconds: float) -> Watchdog:
    return GreenletWatchdog(seconds) if under_gevent() else SocketWatchdog(seconds)


def read_exchange(
    http: httpx.Client,
    request: httpx.Request,
    ex: Exchange,
    limits: Limits,
    redact: Callable[[str], str] = lambda s: s,
    *,
    stop_after_events: int | None = None,
    on_event: Callable[[Exchange], None] | None = None,
    stream_cutoff: Callable[[int], int | None] | None = None,
) -> None:
    """Send `request` and record the whole response into `ex`, bounded in time and bytes.

    `ex.t_start_ns` is taken as the request leaves; `ex.t_headers_ns` when the headers are in;
    `ex.t_end_ns` when the exchange is over. A `text/event-stream` response is read as it arrives
    (`on_event(ex)` after each read that completed events; `stop_after_events` drops the
    connection after that many, a client that goes away); any other body is read to the byte cap.
    Failures are recorded on `ex` (error, timed_out, over_cap), never raised, except a request the
    harness built wrong (httpx.LocalProtocolError, UnsupportedProtocol) and BaseExceptions that
    are not this exchange's deadline (the caller's own cancellation). `stream_cutoff(headers_ns)`
    may end a stream earlier (budget.Budget: the target's streams are known not to end).
    """
    ex.t_start_ns = time.perf_counter_ns()
    deadline = ex.t_start_ns + int(limits.stream_timeout * 1e9)
    response: httpx.Response | None = None
    dog = watchdog(limits.stream_timeout + WATCHDOG_SLACK_S)
    request.extensions["trace"] = dog.trace
    try:
        response = http.send(request, stream=True)
        ex.t_headers_ns = time.perf_counter_ns()
        ex.status = response.status_code
        ex.headers = {k.lower(): v for k, v in response.headers.items()}
        if ex.media_type == "text/event-stream":
            cutoff = stream_cutoff(ex.t_headers_ns) if stream_cutoff is not None else None
            end = deadline if cutoff is None else min(deadline, cutoff)
            _read_stream(response, ex, limits, end, stop_after_events, on_event)
        else:
            _read_body(response, ex, limits, deadline)
        if dog.fired and not ex.timed_out:  # the shut-down socket read as a clean EOF
            _outlived(ex, limits)
            if ex.stream is not None:
                ex.stream.ended_by = "timeout"
    except httpx.TimeoutException as exc:
        ex.timed_out = True
        ex.error = f"no byte for {limits.timeout:g} s ({type(exc).__name__})"
        if ex.stream is not None:
            ex.error = f"no byte for {limits.timeout:g} s after event {len(ex.stream.events)}"
            ex.stream.close("timeout")
    except (httpx.LocalProtocolError, httpx.UnsupportedProtocol):
        raise  # the harness built a request it cannot send: a harness error, not the target's
    except httpx.HTTPError as exc:
        if dog.fired:
            _outlived(ex, limits)
        else:
            reason = redact(str(exc)) or "connection failed"
            ex.error = f"{type(exc).__name__}: {reason}"
        if ex.stream is not None:
            ex.stream.close("timeout" if dog.fired else "transport-error")
    except BaseException as exc:
        if not dog.owns(exc):
            raise
        _outlived(ex, limits)
        if ex.stream is not None and ex.stream.ended_by == "open":
            ex.stream.close("timeout")
    finally:
        dog.cancel()
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()
        ex.t_end_ns = time.perf_counter_ns()


def _outlived(ex: Exchange, limits: Limits) -> None:
    ex.timed_out = True
    ex.error = f"the exchange outlived its {limits.stream_timeout:g} s deadline"


def _read_body(response: httpx.Response, ex: Exchange, limits: Limits, deadline: int) -> None:
    cap = limits.max_body_bytes
    buf = bytearray()
    for chunk in response.iter_raw():
        buf += chunk
        if len(buf) > cap:
            ex.error = f"body exceeded {cap / 1048576:g} MiB"
            ex.over_cap = True
            break
        if time.perf_counter_ns() > deadline:
            ex.error = f"body not complete after {limits.stream_timeout:g} s"
            ex.timed_out = True
            break
    ex.body = bytes(buf[:cap])


def _read_stream(
    response: httpx.Response,
    ex: Exchange,
    limits: Limits,
    deadline: int,
    stop_after_events: int | None,
    on_event: Callable[[Exchange], None] | None,
) -> None:
    rec = ex.stream = StreamRecord()
    total = 0
    if time.perf_counter_ns() >= deadline:  # cut off before the first read (a spent window)
        ex.error, ex.timed_out = "stream not read", True
        rec.close("timeout")
        return
    for chunk in response.iter_raw():
        now = time.perf_counter_ns()
        total += len(chunk)
        new = rec.feed(chunk, now)
        if new and on_event is not None:
            on_event(ex)
        if stop_after_events is not None and len(rec.events) >= stop_after_events:
            rec.close("client-drop")
            return
        if total > limits.max_body_bytes:
            ex.error = f"stream exceeded {limits.max_body_bytes / 1048576:g} MiB"
            ex.over_cap = True
            rec.close("byte-cap")
            return
        if now > deadline:
            ex.error = (
                f"stream still open after {(deadline - ex.t_start_ns) / 1e9:.3g} s "
                f"({len(rec.events)} events)"
            )
            ex.timed_out = True
            rec.close("timeout")
            return
    rec.close("eof")
    ex.body = bytes(rec.wire)
