"""A minimal HTTP/1.1 client for the load path: one request at a time per connection, keep-alive.

The load users' hot path spent about two thirds of its CPU in httpx/httpcore/h11 (request
building, cookie and auth hooks, h11's event machinery per chunk of a stream), which at a few
thousand stream events per second saturated the one process before the server did. This module
does only what a load user needs: write one request, parse the status line and headers, then
hand over the body read by read, with chunked and Content-Length framing decoded and every
blocking step bounded (connect and read timeouts, an absolute deadline, header and chunk-line
size caps). What the bytes mean is not decided here: the caller (``load.h1reader``) feeds the
body to the project's one SSE parser and records the same Exchange the conformance checks judge.

Arrival times: on Linux each read asks the kernel for its receive timestamp (``SO_TIMESTAMPNS``,
the time the last segment of the read reached the socket), converted to the
``time.perf_counter_ns()`` clock. So a stream event is stamped when its bytes arrived, not when
a busy event loop got round to reading them; where the kernel gives no stamp (TLS, another OS)
the read is stamped when it returned, as before. ``Connection.read_lag_ns`` keeps how late the
client read (returned − arrived), the client's own delay that the stamps leave out.

Plain sockets (gevent's under Locust's monkey-patching, so every wait is cooperative), TLS via
the process's verifying context. No proxies, no redirects, no compression (the load requests ask
for ``identity``), no pipelining.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chatconform.reader import under_gevent

now = time.perf_counter_ns

MAX_HEAD_BYTES = 64 * 1024  # status line + headers
MAX_LINE_BYTES = 4096  # a chunk-size line or a trailer line
READ_BYTES = 65536
_HEX = b"0123456789abcdefABCDEF"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux: SO_TIMESTAMPNS_OLD
_TIMESPEC = struct.Struct("@qq")
_ANC_BYTES = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
KERNEL_STAMPS = sys.platform.startswith("linux") and _ANC_BYTES > 0


class ProtocolError(Exception):
    """The peer broke HTTP/1.1 framing (or closed the connection in the middle of a message)."""


class Deadline(Exception):
    """The exchange's absolute deadline passed while waiting."""


class ReadTimeout(Exception):
    """No byte within the read timeout."""


@dataclass(slots=True)
class Head:
    """A response's status line and headers (names lower-cased, repeated ones joined by ", ")."""

    version: str
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    t_ns: int = 0  # arrival of the read that completed the head


def parse_head(raw: bytes) -> Head:
    """The status line and header fields of ``raw`` (without the final blank line)."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"malformed status line {lines[0][:80]!r}")
    if len(parts[1]) != 3:
        raise ProtocolError(f"malformed status code {parts[1]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name or "\t" in name:
            raise ProtocolError(f"malformed header line {line[:80]!r}")
        key = name.lower()
        value = value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return Head(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers)


class ChunkedDecoder:
    """Incremental ``Transfer-Encoding: chunked`` decoder (RFC 9112 §7.1).

    ``feed(data)`` returns the body bytes ``data`` completed (possibly none: framing only);
    ``done`` is True once the last chunk and its trailer section were read, and ``rest`` holds
    any bytes that followed the message. Raises ProtocolError on bad framing.
    """

    __slots__ = ("_buf", "_left", "_state", "done", "rest")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._left = 0  # data bytes still due in the current chunk
        self._state = 0  # 0 size line, 1 data, 2 CRLF after data, 3 trailer lines
        self.done = False
        self.rest = b""

    @staticmethod
    def _size(line: bytes) -> int:
        """The size of a chunk-size line (``1a;ext=x``: 26); ProtocolError if malformed."""
        size_text = line.split(b";", 1)[0].strip(b" \t")
        if not size_text or size_text.translate(None, _HEX) or len(size_text) > 15:
            raise ProtocolError(f"malformed chunk size {line[:40]!r}")
        return int(size_text, 16)

    def feed(self, data: bytes) -> bytes:
        if self.done:
            self.rest += data
            return b""
        if not self._buf and not self._state:  # the common read: exactly one whole chunk
            end = data.find(b"\r\n")
            if 0 < end <= 64:
                size = self._size(data[:end])
                if size and len(data) == end + size + 4 and data.endswith(b"\r\n"):
                    return data[end + 2 : end + 2 + size]
        buf = self._buf
        buf += data
        out = bytearray()
        pos = 0
        n = len(buf)
        while pos < n:
            state = self._state
            if state == 1:
                take = min(self._left, n - pos)
                out += buf[pos : pos + take]
                pos += take
                self._left -= take
                if not self._left:
                    self._state = 2
                continue
            if state == 2:
                if n - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("chunk data not followed by CRLF")
                pos += 2
                self._state = 0
                continue
            end = buf.find(b"\r\n", pos)
            if end < 0:
                if n - pos > MAX_LINE_BYTES:
                    raise ProtocolError(f"chunk line longer than {MAX_LINE_BYTES} bytes")
                break
            line = bytes(buf[pos:end])
            pos = end + 2
            if state == 3:  # trailer section: ends with an empty line
                if not line:
                    self.done = True
                    self.rest = bytes(buf[pos:])
                    buf.clear()
                    return bytes(out)
                continue
            size = self._size(line)
            if size:
                self._left = size
                self._state = 1
            else:
                self._state = 3
        del buf[:pos]
        return bytes(out)


def _stamp(ancdata: list[tuple[int, int, bytes]], returned: int) -> int:
    """The kernel's receive time of a read, on perf_counter_ns's clock (else ``returned``)."""
    for level, kind, raw in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(raw)
            t = sec * 1_000_000_000 + nsec - (time.time_ns() - now())
            return t if t <= returned else returned
    return returned


class Connection:
    """One HTTP/1.1 connection: a socket and the bytes read past the last message.

    Bounds: in plain threads each write and read gets a socket timeout of what is left of the
    read timeout and of the deadline. Under gevent (``bounded_by_timer``) the socket waits
    without a timeout and one timer per exchange (:class:`GeventBound`) throws ReadTimeout or
    Deadline into the reading greenlet instead: gevent would otherwise arm a timer per read.
    """

    def __init__(
        self, sock: socket.socket | ssl.SSLSocket, stamps: bool, bounded_by_timer: bool = False
    ) -> None:
        self.sock = sock
        self.buf = b""
        self.stamps = stamps
        self.bounded_by_timer = bounded_by_timer
        self.requests = 0
        self.read_lag_ns = 0  # the largest (read returned − bytes arrived) on this connection
        self.last_io = now()  # the last time a read returned or a write began
        self.sent_ns = 0  # when the last request began to be written
        self.exchange_lag_ns = 0  # the largest read lag since then
        self.closed = False
        if bounded_by_timer:
            sock.settimeout(None)

    def _limit(self, deadline: int, read_timeout: float) -> float | None:
        t = now()
        self.last_io = t
        if t >= deadline:
            raise Deadline
        if self.bounded_by_timer:
            return None
        limit = min((deadline - t) / 1e9, read_timeout)
        self.sock.settimeout(limit)
        return limit

    def send(self, data: bytes, deadline: int, timeout: float) -> None:
        limit = self._limit(deadline, timeout)
        self.sent_ns = self.last_io  # no byte of the answer can have arrived before this
        self.exchange_lag_ns = 0
        try:
            self.sock.sendall(data)
        except TimeoutError as exc:
            raise (Deadline if limit is not None and limit < timeout else ReadTimeout) from exc

    def recv(self, deadline: int, timeout: float) -> tuple[bytes, int]:
        """One read: (bytes, arrival time); b"" at EOF."""
        limit = self._limit(deadline, timeout)
        try:
            if self.stamps:
                data, anc, _flags, _addr = self.sock.recvmsg(READ_BYTES, _ANC_BYTES)
                returned = self.last_io = now()
                t = max(_stamp(anc, returned), self.sent_ns)  # a clock step cannot go before it
                if returned - t > self.exchange_lag_ns:
                    self.exchange_lag_ns = returned - t
                    self.read_lag_ns = max(self.read_lag_ns, returned - t)
                return data, t
            data = self.sock.recv(READ_BYTES)
            self.last_io = now()
            return data, self.last_io
        except TimeoutError as exc:
            raise (Deadline if limit is not None and limit < timeout else ReadTimeout) from exc

    def idle_and_open(self) -> bool:
        """A kept-alive connection is reusable only while nothing is readable on it (a readable
        idle socket is at EOF, or carries bytes no request asked for)."""
        if self.closed or self.buf:
            return False
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.close()


class GeventBound:
    """Under gevent: one timer for a whole exchange on ``conn``, instead of one per read.

    It fires at the earlier of the deadline and the read timeout after the connection's last
    I/O; then it throws Deadline or ReadTimeout into the greenlet that started it (blocked in a
    read or write: the only waits of an exchange), or re-arms for what is left.
    """

    def __init__(self, conn: Connection, deadline: int, read_timeout: float) -> None:
        import gevent

        self.conn = conn
        self.deadline = deadline
        self.read_timeout_ns = int(read_timeout * 1e9)
        self.glet = gevent.getcurrent()
        self.loop = gevent.get_hub().loop
        self.timer: Any = None
        self._arm()

    def _arm(self) -> None:
        due = min(self.deadline, self.conn.last_io + self.read_timeout_ns)
        self.timer = self.loop.timer(max(due - now(), 0) / 1e9)
        self.timer.start(self._fire, update=True)

    def _fire(self) -> None:
        self.timer.close()
        t = now()
        if t >= self.deadline:
            self.glet.throw(Deadline())
        elif t - self.conn.last_io >= self.read_timeout_ns:
            self.glet.throw(ReadTimeout())
        else:
            self._arm()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.stop()
            self.timer.close()
            self.timer = None


class H1Client:
    """Keep-alive connections to one origin, at most ``connections`` in use at a time.

    ``headers`` go on every request (e.g. Authorization). A connection goes back to the pool
    only after a whole, framed response (Content-Length or chunked) on HTTP/1.1 without
    ``Connection: close``; anything else closes it.
    """

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        connections: int,
        connect_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        default = (self.scheme == "https" and self.port == 443) or self.port == 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if default else f"{host}:{self.port}"
        self.headers = dict(headers)
        self.connect_timeout = connect_timeout
        self.ssl_context = ssl_context
        self._idle: list[Connection] = []
        self._slots = threading.BoundedSemaphore(max(1, connections))
        self.closed = False
        self.read_lag_ns = 0  # the largest read lag of a connection closed or returned so far
        self.gevent = under_gevent()

    def __enter__(self) -> H1Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path_of(self, url: str) -> str:
        parts = urlsplit(url)
        path = parts.path or "/"
        return f"{path}?{parts.query}" if parts.query else path

    def request_bytes(self, method: str, url: str, headers: dict[str, str], body: bytes) -> bytes:
        lines = [f"{method} {self.path_of(url)} HTTP/1.1", f"Host: {self.authority}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def acquire(self, deadline: int) -> tuple[Connection, bool]:
        """A connection (kept-alive if one is usable, else new) and whether it was reused."""
        wait = min(self.connect_timeout, max((deadline - now()) / 1e9, 0.0))
        if not self._slots.acquire(timeout=wait):
            raise (Deadline if now() >= deadline else ReadTimeout)
        try:
            while self._idle:
                conn = self._idle.pop()
                if conn.idle_and_open():
                    return conn, True
                self._retire(conn)
            return self._connect(deadline), False
        except BaseException:
            self._slots.release()
            raise

    def _connect(self, deadline: int) -> Connection:
        left = (deadline - now()) / 1e9
        if left <= 0:
            raise Deadline
        limit = min(left, self.connect_timeout)
        try:
            sock = socket.create_connection((self.host, self.port), timeout=limit)
        except TimeoutError as exc:
            raise (Deadline if limit < self.connect_timeout else ReadTimeout) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stamps = False
            if self.scheme == "https":
                ctx = self.ssl_context or ssl.create_default_context()
                sock = ctx.wrap_socket(sock, server_hostname=self.host)
            elif KERNEL_STAMPS:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                    stamps = True
                except OSError:
                    stamps = False
        except BaseException:
            sock.close()
            raise
        return Connection(sock, stamps, bounded_by_timer=self.gevent)

    def bound(self, conn: Connection, deadline: int, read_timeout: float) -> GeventBound | None:
        """Under gevent, the exchange's one timer (cancel it when done); else None."""
        return GeventBound(conn, deadline, read_timeout) if conn.bounded_by_timer else None

    def _retire(self, conn: Connection) -> None:
        self.read_lag_ns = max(self.read_lag_ns, conn.read_lag_ns)
        conn.close()

    def release(self, conn: Connection, reusable: bool) -> None:
        """Give a connection back: kept for the next request, or closed."""
        try:
            if reusable and not self.closed and not conn.closed:
                conn.requests += 1
                self._idle.append(conn)
            else:
                self._retire(conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        self.closed = True
        while self._idle:
            self._retire(self._idle.pop())
