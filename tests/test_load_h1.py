"""The load path's HTTP/1.1 client (load.h1, load.h1reader) against loopback servers it starts.

Each test scripts the raw bytes a server writes per request (framing split across reads, headers
dribbled, Content-Length and unframed bodies, keep-alive or not, stalls, a close mid-chunk), so
every framing and bound of the hand-written transport is exercised on a real socket. Every wait
is bounded; no assertion is on a duration except the bounds the reader promises (its timeouts).
"""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from chatconform.load import conformance
from chatconform.load.h1 import KERNEL_STAMPS, ChunkedDecoder, ProtocolError, parse_head
from chatconform.load.h1reader import read_exchange
from chatconform.load.stream import call_json, make_client, stream_exchange
from chatconform.load.timeline import OK, Timeline
from chatconform.record import Exchange
from chatconform.target import Limits, Target

Handler = Callable[[socket.socket, int, int], bool]  # (conn, conn index, request index) -> keep


def chunk(content: str | None = None, role: str | None = None, finish: str | None = None) -> bytes:
    delta = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM = [chunk(role="assistant", content=""), chunk("Hel"), chunk("lo"), chunk(finish="stop"),
          b"data: [DONE]\n\n"]  # fmt: skip
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


class Server:
    """A loopback server: per request, ``handler(conn, conn_index, request_index)`` writes the
    response and says whether to keep the connection for another request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.connections = 0
        self.requests: list[tuple[int, bytes]] = []  # (connection index, request head)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            index = self.connections
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn, index), daemon=True).start()

    def _connection(self, conn: socket.socket, index: int) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(10)
        with conn:
            buf = b""
            for n in range(20):  # bounded: at most 20 requests per connection
                try:
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buf += data
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    buf = buf[length:]
                    self.requests.append((index, head))
                    if not self.handler(conn, index, n) or self.stop.is_set():
                        return
                except OSError:
                    return

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Server]]:
    servers: list[Server] = []

    def start(handler: Handler) -> Server:
        servers.append(Server(handler))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def replying(data: bytes) -> Handler:
    """A handler that sends `data` on each request and keeps the connection."""

    def handler(conn: socket.socket, index: int, n: int) -> bool:
        conn.sendall(data)
        return True

    return handler


def target_of(server: Server, **limits: float) -> Target:
    return Target(server.url, api_key="flowyte_sk_test_h1secret", agent_id="m",
                  limits=Limits(**limits))  # type: ignore[arg-type]  # fmt: skip


def send_dribbled(conn: socket.socket, data: bytes, size: int) -> None:
    for i in range(0, len(data), size):
        conn.sendall(data[i : i + size])
        time.sleep(0.001)


def stream_once(target: Target, http: object) -> tuple[Timeline, Exchange]:
    tl = Timeline("completions", time.perf_counter_ns())
    ex = stream_exchange(tl, http, target, "/chat/completions", {"stream": True})  # type: ignore[arg-type]
    return tl, ex


# -- framing ------------------------------------------------------------------------------------


def test_chunked_stream_split_anywhere_is_parsed_checked_and_kept_alive(serve) -> None:  # type: ignore[no-untyped-def]
    """Head and chunk framing cut into 1-, 3- and 7-byte reads; three requests, one connection."""

    def handler(conn: socket.socket, index: int, n: int) -> bool:
        send_dribbled(conn, SSE_HEAD + chunked(*STREAM), (1, 3, 7)[n % 3])
        return True

    server = serve(handler)
    target = target_of(server)
    with make_client(target, 1) as http:
        for _ in range(3):
            tl, ex = stream_once(target, http)
            assert ex.error is None
            assert ex.status == 200
            assert ex.stream is not None
            assert ex.stream.ended_by == "eof"
            assert [e.data for e in ex.stream.events][-1] == "[DONE]"
            assert tl.outcome == OK
            assert len(tl.content) == 2
            assert conformance.check_completion(ex, "m") == []
    assert server.connections == 1
    assert [i for i, _ in server.requests] == [0, 0, 0]
    head = server.requests[0][1].decode()
    assert head.startswith("POST /api/v1/chat/completions HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}" in head
    assert "Authorization: Bearer flowyte_sk_test_h1secret" in head


def test_content_length_bodies_and_reuse(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(conn: socket.socket, index: int, n: int) -> bool:
        body = json.dumps({"success": True, "data": {"id": f"s{n}"}}).encode()
        head = (
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        )
        send_dribbled(conn, head % len(body) + body, 5)
        return True

    server = serve(handler)
    target = target_of(server)
    with make_client(target, 1) as http:
        for n in range(2):
            status, data, error, _ = call_json(http, target, "POST", "/chat/sessions", {"a": 1})
            assert (status, error) == (201, None)
            assert data == {"success": True, "data": {"id": f"s{n}"}}
    assert server.connections == 1


def test_unframed_body_and_connection_close_are_not_reused(serve) -> None:  # type: ignore[no-untyped-def]
    """A body without Content-Length or chunking ends at EOF; ``Connection: close`` is honoured."""

    def handler(conn: socket.socket, index: int, n: int) -> bool:
        if index == 0:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
            conn.sendall(b"".join(STREAM))
            return False  # close: the end of the body
        body = b'{"ok": 1}'
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 9\r\n\r\n" + body)
        return True  # keeps the socket open: the client must not reuse it anyway

    server = serve(handler)
    target = target_of(server)
    with make_client(target, 1) as http:
        tl, ex = stream_once(target, http)
        assert tl.outcome == OK
        assert ex.stream is not None
        assert ex.stream.ended_by == "eof"
        for _ in range(2):
            status, data, error, _ = call_json(http, target, "GET", "/x")
            assert (status, data, error) == (200, {"ok": 1}, None)
    assert server.connections == 3


def test_a_keep_alive_connection_the_server_closed_while_idle_is_replaced(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(conn: socket.socket, index: int, n: int) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        return False  # the server closes at once, without saying so

    server = serve(handler)
    target = target_of(server)
    with make_client(target, 1) as http:
        assert call_json(http, target, "GET", "/a")[:3] == (200, {}, None)
        time.sleep(0.05)  # the close reaches the client
        assert call_json(http, target, "GET", "/b")[:3] == (200, {}, None)
    assert server.connections == 2


def test_interim_responses_are_skipped(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(
        replying(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    )
    target = target_of(server)
    with make_client(target, 1) as http:
        assert call_json(http, target, "GET", "/a")[:3] == (200, {}, None)


# -- failures, each bounded -----------------------------------------------------------------------


def test_a_close_in_the_middle_of_a_chunk_is_a_transport_error_not_judged(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(conn: socket.socket, index: int, n: int) -> bool:
        whole = chunked(*STREAM)
        conn.sendall(SSE_HEAD + whole[: len(whole) // 2])
        return False

    server = serve(handler)
    target = target_of(server)
    with make_client(target, 1) as http:
        tl, ex = stream_once(target, http)
    assert ex.error is not None
    assert ex.error.startswith("RemoteProtocolError: ")
    assert ex.stream is not None
    assert ex.stream.ended_by == "transport-error"
    assert tl.outcome == "incomplete"
    assert not conformance.judged(ex)


def test_malformed_chunk_size_is_a_protocol_error(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(replying(SSE_HEAD + b"0x10\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n"))
    target = target_of(server)
    with make_client(target, 1) as http:
        _, ex = stream_once(target, http)
    assert ex.error is not None
    assert "malformed chunk size" in ex.error
    assert ex.stream is not None
    assert ex.stream.ended_by == "transport-error"


def test_read_timeout_after_an_event(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(conn: socket.socket, index: int, n: int) -> bool:
        conn.sendall(SSE_HEAD + b"%x\r\n%s\r\n" % (len(STREAM[1]), STREAM[1]))
        server.stop.wait(5)  # then nothing
        return False

    server = serve(handler)
    target = target_of(server, timeout=0.3, stream_timeout=5)
    with make_client(target, 1) as http:
        t0 = time.monotonic()
        tl, ex = stream_once(target, http)
        elapsed = time.monotonic() - t0
    assert ex.timed_out
    assert ex.error == "no byte for 0.3 s after event 1"
    assert ex.stream is not None
    assert ex.stream.ended_by == "timeout"
    assert len(tl.content) == 1
    assert tl.outcome == "incomplete"
    assert elapsed < 3.0


def test_headers_dripped_past_the_deadline_end_the_exchange(serve) -> None:  # type: ignore[no-untyped-def]
    """Each byte comes within the read timeout, but the exchange as a whole is bounded."""

    def handler(conn: socket.socket, index: int, n: int) -> bool:
        for byte in b"HTTP/1.1 200 OK\r\nX-Drip: " + b"a" * 1000:
            conn.sendall(bytes([byte]))
            if server.stop.wait(0.1):
                break
        return False

    server = serve(handler)
    target = target_of(server, timeout=1, stream_timeout=1)
    with make_client(target, 1) as http:
        t0 = time.monotonic()
        status, _, error, _ = call_json(http, target, "GET", "/x")
        elapsed = time.monotonic() - t0
    assert status is None
    assert error == "the exchange outlived its 1 s deadline"
    assert elapsed < 3.0


def test_a_stream_that_never_ends_is_cut_at_the_deadline(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(conn: socket.socket, index: int, n: int) -> bool:
        conn.sendall(SSE_HEAD)
        for _ in range(200):
            conn.sendall(b"%x\r\n%s\r\n" % (len(STREAM[1]), STREAM[1]))
            if server.stop.wait(0.02):
                break
        return False

    server = serve(handler)
    target = target_of(server, timeout=1, stream_timeout=0.5)
    with make_client(target, 1) as http:
        tl, ex = stream_once(target, http)
    assert ex.timed_out
    assert ex.error is not None
    assert ex.error.startswith("stream still open after")
    assert ex.stream is not None
    assert ex.stream.ended_by == "timeout"
    assert len(tl.content) > 1
    assert not conformance.judged(ex)


def test_the_byte_cap_ends_a_stream(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(replying(SSE_HEAD + chunked(*[STREAM[1]] * 500)))
    target = target_of(server, max_body_bytes=4096)
    with make_client(target, 1) as http:
        _, ex = stream_once(target, http)
    assert ex.over_cap
    assert ex.error == f"stream exceeded {4096 / 1048576:g} MiB"
    assert ex.stream is not None
    assert ex.stream.ended_by == "byte-cap"


def test_connection_refused_is_a_transport_error() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    target = Target(f"http://127.0.0.1:{port}/api/v1", api_key="k", limits=Limits(timeout=1))
    with make_client(target, 1) as http:
        status, _, error, _ = call_json(http, target, "GET", "/x")
    assert status is None
    assert error is not None
    assert error.startswith("ConnectError: ")


# -- arrival times --------------------------------------------------------------------------------


@pytest.mark.skipif(not KERNEL_STAMPS, reason="kernel receive timestamps are Linux's")
def test_a_read_is_stamped_when_its_bytes_arrived_not_when_it_was_read(serve) -> None:  # type: ignore[no-untyped-def]
    sent = threading.Event()

    def handler(conn: socket.socket, index: int, n: int) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        sent.set()
        return True

    server = serve(handler)
    target = target_of(server)
    with make_client(target, 1) as http:
        conn, _ = http.acquire(time.perf_counter_ns() + 5_000_000_000)
        assert conn.stamps
        conn.send(
            http.request_bytes("GET", server.url, {}, b""), time.perf_counter_ns() + 5 * 10**9, 5
        )
        assert sent.wait(5)
        readable, _, _ = select.select([conn.sock], [], [], 5)  # the bytes are in its queue
        assert readable
        time.sleep(0.01)
        before_read = time.perf_counter_ns()
        data, t = conn.recv(time.perf_counter_ns() + 5_000_000_000, 5)
        http.release(conn, False)
    assert data.endswith(b"{}")
    assert t < before_read  # the kernel's arrival time, on the same clock
    assert conn.read_lag_ns > 0


def test_events_of_one_exchange_are_stamped_within_it(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(conn: socket.socket, index: int, n: int) -> bool:
        conn.sendall(SSE_HEAD)
        for piece in STREAM:
            time.sleep(0.01)
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.sendall(b"0\r\n\r\n")
        return True

    server = serve(handler)
    target = target_of(server)
    with make_client(target, 1) as http:
        tl, ex = stream_once(target, http)
    assert ex.stream is not None
    assert ex.t_headers_ns is not None
    assert ex.t_end_ns is not None
    stamps = [e.t_ns for e in ex.stream.events]
    assert ex.t_start_ns <= ex.t_headers_ns <= stamps[0]
    assert stamps == sorted(stamps)
    assert stamps[-1] <= ex.t_end_ns
    assert tl.t_sent == ex.t_start_ns
    assert tl.content == stamps[1:3]


# -- the pieces alone -----------------------------------------------------------------------------


def test_chunked_decoder_byte_by_byte_with_extensions_and_trailers() -> None:
    wire = b"5;name=v\r\nhello\r\n1A\r\n" + b"x" * 26 + b"\r\n0\r\nTrailer: t\r\n\r\nNEXT"
    dec = ChunkedDecoder()
    out = b"".join(dec.feed(wire[i : i + 1]) for i in range(len(wire)))
    assert out == b"hello" + b"x" * 26
    assert dec.done
    assert dec.rest == b"NEXT"
    whole = ChunkedDecoder()
    assert whole.feed(wire) == out
    assert whole.done
    assert whole.rest == b"NEXT"


@pytest.mark.parametrize(
    "wire",
    [b"zz\r\n", b"0x5\r\nhello\r\n", b"5\r\nhelloXX", b"-5\r\n", b"1_0\r\n", b"5" * 5000],
)
def test_chunked_decoder_rejects_bad_framing(wire: bytes) -> None:
    with pytest.raises(ProtocolError):
        ChunkedDecoder().feed(wire)


def test_parse_head_joins_repeated_fields_and_rejects_garbage() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Type:  text/plain ")
    assert (head.status, head.reason) == (200, "OK")
    assert head.headers == {"x-a": "1, 2", "content-type": "text/plain"}
    for bad in (b"HTTP/2 200 OK", b"HTTP/1.1 20 OK", b"ICY 200 OK", b"HTTP/1.1 200 OK\r\nNoColon"):
        with pytest.raises(ProtocolError):
            parse_head(bad)


def test_read_exchange_records_what_went_on_the_wire(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(replying(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop"))
    target = target_of(server)
    with make_client(target, 1) as http:
        ex = Exchange("GET", server.url + "/q?a=1", dict(http.headers))
        read_exchange(http, ex, target.limits, target.redact)
    assert (ex.status, ex.body, ex.error) == (404, b"nop", None)
    assert server.requests[0][1].startswith(b"GET /api/v1/q?a=1 HTTP/1.1\r\n")


# -- under gevent: one timer per exchange bounds it ------------------------------------------------

GEVENT_CLIENT = """
from gevent import monkey; monkey.patch_all()
import json, sys, time
from chatconform.load.stream import make_client, stream_exchange
from chatconform.load.timeline import Timeline
from chatconform.target import Limits, Target
out = {}
for path, limits in (("/ok", Limits(timeout=1, stream_timeout=5)),
                     ("/stall", Limits(timeout=0.3, stream_timeout=5)),
                     ("/endless", Limits(timeout=1, stream_timeout=0.5))):
    target = Target(sys.argv[1], api_key="k", agent_id="m", limits=limits)
    with make_client(target, 1) as http:
        t0 = time.monotonic()
        tl = Timeline("completions", time.perf_counter_ns())
        ex = stream_exchange(tl, http, target, path, {"stream": True})
        out[path] = {"error": ex.error, "ended_by": ex.stream.ended_by, "outcome": tl.outcome,
                     "elapsed": time.monotonic() - t0, "timer": http.gevent}
print(json.dumps(out))
"""


def test_under_gevent_one_timer_bounds_reads_and_the_exchange(serve) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    def handler(conn: socket.socket, index: int, n: int) -> bool:
        path = server.requests[-1][1].split(b" ")[1]
        if path.endswith(b"/ok"):
            conn.sendall(SSE_HEAD + chunked(*STREAM))
            return True
        conn.sendall(SSE_HEAD + b"%x\r\n%s\r\n" % (len(STREAM[1]), STREAM[1]))
        for _ in range(200 if path.endswith(b"/endless") else 0):
            conn.sendall(b"%x\r\n%s\r\n" % (len(STREAM[2]), STREAM[2]))
            if server.stop.wait(0.02):
                break
        server.stop.wait(5)
        return False

    server = serve(handler)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYTE_")}
    proc = subprocess.run([sys.executable, "-c", GEVENT_CLIENT, f"http://127.0.0.1:{server.port}"],
                          capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(r["timer"] for r in out.values())  # the gevent path ran
    assert (out["/ok"]["outcome"], out["/ok"]["error"]) == (OK, None)
    assert out["/stall"]["error"] == "no byte for 0.3 s after event 1"
    assert out["/stall"]["ended_by"] == "timeout"
    assert out["/stall"]["elapsed"] < 3.0
    assert out["/endless"]["error"].startswith("stream still open after 0.5 s")
    assert out["/endless"]["ended_by"] == "timeout"
    assert out["/endless"]["elapsed"] < 3.0


def test_read_lag_is_recorded_per_exchange_and_pooled_over_processes(serve) -> None:  # type: ignore[no-untyped-def]
    from chatconform.load.health import HealthMonitor, merge

    server = serve(replying(SSE_HEAD + chunked(*STREAM)))
    target = target_of(server)
    with make_client(target, 1) as http:
        _, ex = stream_once(target, http)
    assert (ex.read_lag_ns is not None) == KERNEL_STAMPS
    monitors = [HealthMonitor("local"), HealthMonitor("worker")]
    for _ in range(300):
        monitors[0].add_read_lag(5_000_000)  # 5 ms: the p99 whatever the one measured above
    monitors[1].add_read_lag(ex.read_lag_ns)
    monitors[1].add_read_lag(None)  # no kernel stamps: nothing recorded
    merged = merge([m.report() for m in monitors])
    assert merged["read_lag_p99_ms"] is not None
    assert 4.9 <= merged["read_lag_p99_ms"] <= 5.1
    assert all("read_lag_hist" not in p for p in merged["processes"])
