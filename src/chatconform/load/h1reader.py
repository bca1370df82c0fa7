"""The load path's reader: one exchange over ``load.h1``, recorded into the same Exchange.

It does for the load users what ``chatconform.reader.read_exchange`` does for the suites, over
the lean HTTP/1.1 client instead of httpx: the request leaves, the status and headers are
recorded, and a ``text/event-stream`` body is fed read by read to the project's one SSE parser
(``record.StreamRecord``), each read stamped with its arrival time; any other body is read to the
byte cap. So the conformance checks judge exactly the Exchange the latency figures come from.

Bounds, as the shared reader's: every connect, write and read waits at most ``Limits.timeout``,
the whole exchange (headers included) ends at ``Limits.stream_timeout`` (each wait is cut to what
is left of it, so no watchdog is needed, in threads or under gevent), and a body or stream ends
at ``Limits.max_body_bytes``. Failures are recorded on the Exchange (``error``, ``timed_out``,
``over_cap``, and for a stream how it ended: ``eof``, ``timeout``, ``byte-cap``,
``transport-error``), never raised; BaseExceptions (the run stopping) close the connection and
propagate.

``ex.t_start_ns`` is taken as the request is written (after a connection was taken from the
pool, or made), ``ex.t_headers_ns`` is the arrival of the read that completed the headers.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator

from chatconform.load.h1 import (
    MAX_HEAD_BYTES,
    ChunkedDecoder,
    Connection,
    Deadline,
    GeventBound,
    H1Client,
    Head,
    ProtocolError,
    ReadTimeout,
    now,
    parse_head,
)
from chatconform.record import Exchange, StreamRecord
from chatconform.target import Limits


class EarlyClose(ProtocolError):
    """The peer closed the connection before a whole response head; ``nothing``: not one byte."""

    def __init__(self, nothing: bool) -> None:
        super().__init__("server disconnected without sending a response")
        self.nothing = nothing


class Framing:
    """How a body ended: read whole (per its framing) and whether the connection can be reused."""

    __slots__ = ("complete", "reusable")

    def __init__(self) -> None:
        self.complete = False
        self.reusable = False


def read_head(conn: Connection, deadline: int, timeout: float) -> Head:
    """Read until a final (non-1xx) response head; the bytes after it stay in ``conn.buf``."""
    buf = conn.buf
    conn.buf = b""
    t = now()
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = parse_head(buf[:end])
            head.t_ns = t
            buf = buf[end + 4 :]
            if 100 <= head.status < 200 and head.status != 101:
                continue  # an interim response (100 Continue, 103 Early Hints): the final follows
            conn.buf = buf
            return head
        if len(buf) > MAX_HEAD_BYTES:
            raise ProtocolError(f"response head larger than {MAX_HEAD_BYTES // 1024} KiB")
        data, t = conn.recv(deadline, timeout)
        if not data:
            raise EarlyClose(nothing=not buf)
        buf += data


def _content_length(value: str) -> int:
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1:
        raise ProtocolError(f"conflicting Content-Length {value!r}")
    text = values.pop()
    if not text.isdigit() or len(text) > 18:
        raise ProtocolError(f"invalid Content-Length {value!r}")
    return int(text)


def body_pieces(
    conn: Connection, head: Head, deadline: int, timeout: float, framing: Framing
) -> Iterator[tuple[bytes, int]]:
    """The body, one piece per network read, with that read's arrival time.

    Chunked and Content-Length bodies end with their framing (a connection closed before that is
    a ProtocolError); a body with neither ends at EOF. ``framing`` says how it ended.
    """
    h = head.headers
    keep = head.version == "HTTP/1.1" and "close" not in h.get("connection", "").lower()
    if head.status in (204, 304) or head.status < 200:
        framing.complete, framing.reusable = True, keep and not conn.buf
        return
    te = h.get("transfer-encoding")
    if te is not None and te.rsplit(",", 1)[-1].strip().lower() == "chunked":
        dec = ChunkedDecoder()
        first, conn.buf = conn.buf, b""
        if first:
            out = dec.feed(first)
            if out:
                yield out, head.t_ns
        while not dec.done:
            data, t = conn.recv(deadline, timeout)
            if not data:
                raise ProtocolError("peer closed the connection in the middle of a chunked body")
            out = dec.feed(data)
            if out:
                yield out, t
        framing.complete, framing.reusable = True, keep and not dec.rest
        return
    cl = h.get("content-length") if te is None else None
    if cl is not None:
        left = _content_length(cl)
        first, conn.buf = conn.buf, b""
        if first:
            piece = first[:left]
            left -= len(piece)
            if len(first) > len(piece):
                keep = False  # bytes past the message: no one asked for them
            if piece:
                yield piece, head.t_ns
        while left > 0:
            data, t = conn.recv(deadline, timeout)
            if not data:
                raise ProtocolError(f"peer closed the connection with {left} body bytes due")
            piece = data[:left]
            if len(data) > left:
                keep = False
            left -= len(piece)
            yield piece, t
        framing.complete, framing.reusable = True, keep
        return
    first, conn.buf = conn.buf, b""  # neither: the body is whatever comes until EOF
    if first:
        yield first, head.t_ns
    while True:
        data, t = conn.recv(deadline, timeout)
        if not data:
            break
        yield data, t
    framing.complete, framing.reusable = True, False


def _request(conn: Connection, ex: Exchange, data: bytes, deadline: int, timeout: float) -> Head:
    """Write the request on ``conn`` (the exchange's start) and read the response head."""
    ex.t_start_ns = now()
    conn.send(data, deadline, timeout)
    return read_head(conn, deadline, timeout)


def _connect(
    client: H1Client, deadline: int, timeout: float, bounds: list[GeventBound]
) -> tuple[Connection, bool]:
    """A connection from the pool, with its exchange timer under gevent (kept in ``bounds``)."""
    conn, reused = client.acquire(deadline)
    bound = client.bound(conn, deadline, timeout)
    if bound is not None:
        bounds.append(bound)
    return conn, reused


def read_exchange(
    client: H1Client, ex: Exchange, limits: Limits, redact: Callable[[str], str] = lambda s: s
) -> None:
    """Send ``ex``'s request (method, url, request_headers, request_body) and record the response.

    A kept-alive connection that the server closed before answering (not one byte back) is
    retried once on a new connection: the request never reached the application.
    """
    t0 = now()
    ex.t_start_ns = t0
    deadline = t0 + int(limits.stream_timeout * 1e9)
    timeout = limits.timeout
    data = client.request_bytes(ex.method, ex.url, ex.request_headers, ex.request_body or b"")
    conn: Connection | None = None
    framing = Framing()
    stage = "connect"
    bounds: list[GeventBound] = []
    try:
        conn, reused = _connect(client, deadline, timeout, bounds)
        stage = "send"
        try:
            head = _request(conn, ex, data, deadline, timeout)
        except (EarlyClose, ConnectionResetError, BrokenPipeError) as exc:
            if not reused or (isinstance(exc, EarlyClose) and not exc.nothing):
                raise
            for bound in bounds:
                bound.cancel()
            client.release(conn, False)  # closed by the server while idle: once more, anew
            conn = None
            stage = "connect"
            conn, _ = _connect(client, deadline, timeout, bounds)
            stage = "send"
            head = _request(conn, ex, data, deadline, timeout)
        stage = "body"
        ex.t_headers_ns = head.t_ns
        ex.status = head.status
        ex.headers = head.headers
        pieces = body_pieces(conn, head, deadline, timeout, framing)
        if ex.media_type == "text/event-stream":
            _read_stream(pieces, ex, limits)
        else:
            _read_body(pieces, ex, limits)
    except Deadline:
        ex.timed_out = True
        if ex.stream is not None:
            n = len(ex.stream.events)
            ex.error = f"stream still open after {limits.stream_timeout:g} s ({n} events)"
            ex.stream.close("timeout")
        elif stage == "body":
            ex.error = f"body not complete after {limits.stream_timeout:g} s"
        else:
            ex.error = f"the exchange outlived its {limits.stream_timeout:g} s deadline"
    except ReadTimeout:
        ex.timed_out = True
        what = "ConnectTimeout" if stage == "connect" else "ReadTimeout"
        ex.error = f"no byte for {timeout:g} s ({what})"
        if ex.stream is not None:
            ex.error = f"no byte for {timeout:g} s after event {len(ex.stream.events)}"
            ex.stream.close("timeout")
    except ProtocolError as exc:
        ex.error = f"RemoteProtocolError: {redact(str(exc))}"
        if ex.stream is not None:
            ex.stream.close("transport-error")
    except (OSError, ssl.SSLError) as exc:
        kind = "ConnectError" if stage == "connect" else "ReadError"
        if isinstance(exc, BrokenPipeError):
            kind = "WriteError"
        ex.error = f"{kind}: {redact(str(exc)) or type(exc).__name__}"
        if ex.stream is not None:
            ex.stream.close("transport-error")
    finally:
        for bound in bounds:
            bound.cancel()
        if conn is not None:
            if conn.stamps:
                ex.read_lag_ns = conn.exchange_lag_ns
            client.release(conn, framing.complete and framing.reusable)
        ex.t_end_ns = now()


def _read_stream(pieces: Iterator[tuple[bytes, int]], ex: Exchange, limits: Limits) -> None:
    rec = ex.stream = StreamRecord()
    cap = limits.max_body_bytes
    total = 0
    for data, t in pieces:
        total += len(data)
        rec.feed(data, t)
        if total > cap:
            ex.error = f"stream exceeded {cap / 1048576:g} MiB"
            ex.over_cap = True
            rec.close("byte-cap")
            return
    rec.close("eof")
    ex.body = bytes(rec.wire)


def _read_body(pieces: Iterator[tuple[bytes, int]], ex: Exchange, limits: Limits) -> None:
    cap = limits.max_body_bytes
    buf = bytearray()
    for data, _t in pieces:
        buf += data
        if len(buf) > cap:
            ex.error = f"body exceeded {cap / 1048576:g} MiB"
            ex.over_cap = True
            break
    ex.body = bytes(buf[:cap])
