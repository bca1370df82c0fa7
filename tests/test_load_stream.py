"""The real reader (httpx, bytes as they arrive) against a scripted loopback server, and a stall.

The server is this file's own: an asyncio socket server in a thread, writing scripted pieces
with delays (TCP_NODELAY, so each piece is its own read). Its first path segment names the
script. Every wait is bounded; timing assertions are gross bounds only (measured >= injected).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatconform.load import conformance
from chatconform.load.stream import make_client, stream_exchange
from chatconform.load.timeline import ERROR_EVENT, INCOMPLETE, OK, Timeline, derived, itl_gaps
from chatconform.target import Limits, Target

KEY = "flowyte_sk_test_loadtestsecret0001"


def chunk(content: str | None = None, role: str | None = None, finish: str | None = None) -> bytes:
    delta = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
    body = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def usage_chunk(completion_tokens: int) -> bytes:
    """OpenAI's last chunk when a request asks stream_options.include_usage: no choices."""
    body = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": completion_tokens, "total_tokens": 9},
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def frame(event: str, delta: str | None = None, eol: bytes = b"\n") -> bytes:
    payload = {"delta": delta, "messageId": "m"} if delta is not None else {}
    data = json.dumps({"eventType": event, "payload": payload}).encode()
    return b"event: " + event.encode() + eol + b"data: " + data + eol + eol


DONE = b"data: [DONE]\n\n"
SPLIT = frame("agent_message", "split")
SCRIPTS: dict[str, list[tuple[float, bytes]]] = {
    # (seconds to wait before writing, bytes)
    "rolefirst": [
        (0.0, chunk(role="assistant", content="")),
        (0.06, chunk("Hel")),
        (0.01, chunk("lo")),
        (0.0, DONE),
    ],
    "split": [(0.03, SPLIT[:20]), (0.05, SPLIT[20:]), (0.0, frame("done"))],
    "burst": [
        (
            0.02,
            frame("agent_message", "a") + frame("agent_message", "b") + frame("agent_message", "c"),
        ),
        (0.01, frame("done")),
    ],
    "crlf": [
        (0.02, frame("agent_message", "a", b"\r\n")),
        (0.01, frame("agent_message", "b", b"\r\n")),
        (0.0, frame("done", eol=b"\r\n")),
    ],
    "nodone": [(0.02, frame("agent_message", "a"))],
    # two content chunks that carry six tokens, as the server's usage says
    "usage": [
        (0.0, chunk(role="assistant", content="")),
        (0.05, chunk("Hello wor")),
        (0.03, chunk("ld, again")),
        (0.0, chunk(finish="stop")),
        (0.0, usage_chunk(6)),
        (0.0, DONE),
    ],
    "error": [(0.02, frame("agent_message", "a")), (0.01, frame("error"))],
}
STALL_START_S, STALL_S = 1.0, 2.0
SLOW_AFTER_S, SLOW_TTFT_S = 1.5, 2.5
CAPPED_SLOTS, CAPPED_S = (
    2,
    0.25,
)  # capped: 8 req/s at most  # slowtail: requests after 1.5 s wait 2.5 s for a token


class ScriptServer:
    """Serves SCRIPTS, plus /stall/…: OpenAI streams that all hold during a 2 s window."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.first_stall_request: float | None = None
        self.first_slowtail_request: float | None = None
        self.capped: asyncio.Semaphore | None = None  # made in the server's loop
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ScriptServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
            await self._respond(method, path, body, writer)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def _respond(
        self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter
    ) -> None:
        script = path.strip("/").split("/", 1)[0]
        if method == "GET":  # the CLI's preflight: an unknown session
            body = b'{"status": 404}'
            writer.write(
                b"HTTP/1.1 404 Not Found\r\nContent-Type: application/problem+json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        if script == "stall":
            await self._stall(writer, b'"stream"' in body)
            return
        if script == "slowtail":
            await self._slowtail(writer)
            return
        if script == "capped":
            await self._capped(writer)
            return
        for delay, data in SCRIPTS[script]:
            await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()

    async def _capped(self, writer: asyncio.StreamWriter) -> None:
        """A server of fixed capacity: CAPPED_SLOTS replies at a time, CAPPED_S each; more
        requests queue, so past CAPPED_SLOTS / CAPPED_S req/s their TTFT grows without bound."""
        if self.capped is None:
            self.capped = asyncio.Semaphore(CAPPED_SLOTS)
        async with self.capped:
            await asyncio.sleep(0.02)
            writer.write(chunk(role="assistant", content="") + chunk("a"))
            await writer.drain()
            await asyncio.sleep(CAPPED_S - 0.02)
            writer.write(chunk("b") + chunk(finish="stop") + DONE)
            await writer.drain()

    async def _slowtail(self, writer: asyncio.StreamWriter) -> None:
        """The later a request comes, the slower: the run's last requests are its slowest."""
        now = time.monotonic()
        if self.first_slowtail_request is None:
            self.first_slowtail_request = now
        late = now - self.first_slowtail_request > SLOW_AFTER_S
        await asyncio.sleep(SLOW_TTFT_S if late else 0.02)
        writer.write(chunk(role="assistant", content="") + chunk("a"))
        await writer.drain()
        await asyncio.sleep(0.005)
        writer.write(chunk("b") + chunk(finish="stop") + DONE)
        await writer.drain()

    async def _stall(self, writer: asyncio.StreamWriter, streamed: bool) -> None:
        now = time.monotonic()
        if self.first_stall_request is None and streamed:  # the load's, not the preflight's
            self.first_stall_request = now
        start = (self.first_stall_request or now) + STALL_START_S
        if start <= now < start + STALL_S:
            await asyncio.sleep(start + STALL_S - now)  # the server stalls: nothing moves
        await asyncio.sleep(0.02)
        writer.write(chunk(role="assistant", content="") + chunk("a"))
        await writer.drain()
        await asyncio.sleep(0.005)
        writer.write(chunk("b") + DONE)
        await writer.drain()


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptServer]:
    with ScriptServer() as s:
        yield s


def measure(server: ScriptServer, script: str, endpoint: str) -> dict[str, object]:
    target = Target(
        f"http://127.0.0.1:{server.port}/{script}",
        api_key=KEY,
        agent_id="a",
        limits=Limits(timeout=5, stream_timeout=10),
    )
    with make_client(target, 1) as http:
        tl = Timeline(endpoint, time.perf_counter_ns())
        stream_exchange(tl, http, target, "/x", {"stream": True})
    return tl.to_sample()


def test_role_only_chunk_skipped_over_the_wire(server: ScriptServer) -> None:
    s = measure(server, "rolefirst", "completions")
    assert s["outcome"] == OK
    f = derived(s)
    assert f["ttft_ms"] is not None
    assert f["ttft_ms"] >= 60  # the role-only chunk came at ~0 ms, the first text at >= 60 ms
    assert len(s["content_ms"]) == 2
    assert itl_gaps(s)[0] >= 10


def test_split_frame_timed_when_complete(server: ScriptServer) -> None:
    s = measure(server, "split", "sessions")
    assert s["outcome"] == OK
    assert derived(s)["ttft_ms"] >= 80  # first half at >= 30 ms, completed at >= 80 ms


def test_burst_of_tokens_counts_each_delta(server: ScriptServer) -> None:
    s = measure(server, "burst", "sessions")
    assert s["outcome"] == OK
    assert len(s["content_ms"]) == 3
    assert itl_gaps(s) == [0, 0]  # one read carried all three


def test_crlf_stream_over_the_wire(server: ScriptServer) -> None:
    s = measure(server, "crlf", "sessions")
    assert s["outcome"] == OK
    assert len(s["content_ms"]) == 2
    assert itl_gaps(s)[0] >= 10


def test_incomplete_and_error_streams(server: ScriptServer) -> None:
    s = measure(server, "nodone", "sessions")
    assert s["outcome"] == INCOMPLETE
    assert "no terminal frame" in str(s["error"])
    assert s["terminal_ms"] is None
    e = measure(server, "error", "sessions")
    assert e["outcome"] == ERROR_EVENT


def test_usage_tokens_from_the_server_make_tpot(server: ScriptServer) -> None:
    """Output tokens come from usage.completion_tokens when the server sends it, and TPOT is
    (E2E − TTFT) / (tokens − 1) over them; the usage chunk after the finish chunk is conformant."""
    target = Target(
        f"http://127.0.0.1:{server.port}/usage", api_key=KEY, agent_id="m",
        limits=Limits(timeout=5, stream_timeout=10),
    )  # fmt: skip
    with make_client(target, 1) as http:
        tl = Timeline("completions", time.perf_counter_ns())
        ex = stream_exchange(tl, http, target, "/x", {"stream": True})
    s = tl.to_sample()
    assert s["outcome"] == OK
    assert len(s["content_ms"]) == 2
    assert (s["output_tokens"], s["token_source"]) == (6, "usage")
    f = derived(s)
    assert f["tpot_ms"] == pytest.approx((f["e2e_ms"] - f["ttft_ms"]) / 5)
    assert f["stall_ms"] >= 30  # the one gap between the two content chunks
    assert conformance.judged(ex)
    assert conformance.check_completion(ex, "m") == []


def test_a_server_without_usage_counts_chunks(server: ScriptServer) -> None:
    s = measure(server, "rolefirst", "completions")
    assert (s["output_tokens"], s["token_source"]) == (2, "chunks")


def test_a_completion_sample_keeps_the_response_id_and_a_session_sample_none(
    server: ScriptServer,
) -> None:
    """The chunks' id lets a user find a slow request in the server's logs (and the calibration
    benchmark join each request with the server's own send time)."""
    assert measure(server, "rolefirst", "completions")["response_id"] == "c"
    assert measure(server, "crlf", "sessions")["response_id"] is None


def test_the_response_id_is_the_first_json_chunks_and_bounded() -> None:
    from chatconform.load.stream import MAX_ID_CHARS, response_id

    assert response_id([None, {"id": "chatcmpl-1"}, {"id": "chatcmpl-2"}]) == "chatcmpl-1"
    assert response_id([{"object": "x"}, {"id": "late"}]) is None  # the first chunk had none
    assert response_id([{"id": 7}]) is None
    assert response_id([]) is None
    assert response_id([{"id": "x" * 1000}]) == "x" * MAX_ID_CHARS


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWYTE_", "LOCUST_"))}
    env.pop("CHATCONFORM_REFERENCE_ARGS", None)
    return env


def test_open_loop_shows_a_stalled_server_as_latency(server: ScriptServer, tmp_path: Path) -> None:
    rate, seconds = 10, 5
    env = _clean_env() | {"FLOWYTE_API_KEY": KEY, "FLOWYTE_AGENT_ID": "a"}
    cmd = [
        sys.executable,
        "-m",
        "chatconform.load",
        "--endpoint",
        "completions",
        "--base-url",
        f"http://127.0.0.1:{server.port}/stall",
        "--rate",
        str(rate),
        "--run-time",
        f"{seconds}s",
        "--report-dir",
        str(tmp_path),
        "--timeout",
        "5",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    summary = json.loads((tmp_path / "load-summary.json").read_text())
    ep = summary["endpoints"]["completions"]
    assert summary["mode"] == "open-loop"
    # requests kept leaving on schedule through the stall: the count did not collapse
    assert summary["client"]["scheduled"] >= rate * seconds * 0.7
    # and the stall shows up as latency: requests sent during it waited up to ~2 s
    assert ep["ttft_ms"]["max"] >= 1000
    assert ep["e2e_ms"]["max"] >= 1000
    assert summary["client"]["dispatch_lag_ms"]["count"] >= rate * seconds * 0.7
    assert KEY not in (tmp_path / "requests.jsonl").read_text()


def test_the_last_requests_in_flight_are_waited_for_and_counted(
    server: ScriptServer, tmp_path: Path
) -> None:
    """Requests still in flight when the run time is up finish and count: the run's slowest
    requests come last here, and they are its p99 (they used to be dropped as cancelled)."""
    env = _clean_env() | {"FLOWYTE_API_KEY": KEY, "FLOWYTE_AGENT_ID": "a"}
    cmd = [
        sys.executable, "-m", "chatconform.load", "--endpoint", "completions",
        "--base-url", f"http://127.0.0.1:{server.port}/slowtail", "--users", "3",
        "--run-time", "3s", "--report-dir", str(tmp_path), "--timeout", "5",
        "--stream-timeout", "8",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-2000:]
    ep = json.loads((tmp_path / "load-summary.json").read_text())["endpoints"]["completions"]
    slow_ms = SLOW_TTFT_S * 1000
    assert ep["censored"] == 0
    assert ep["outcomes"] == {"ok": ep["requests"]}
    assert ep["ttft_ms"]["max"] >= slow_ms
    assert ep["ttft_ms"]["p99"] >= slow_ms  # the slow tail is in the percentiles
    slow = [
        json.loads(line)
        for line in (tmp_path / "requests.jsonl").read_text().splitlines()
        if json.loads(line)["outcome"] == "ok"
    ]
    assert sum(1 for s in slow if derived(s)["ttft_ms"] >= slow_ms) >= 3  # one per user at least


class KeepAliveDripServer:
    """Answers the first request on a connection at once (keep-alive), then drips the headers
    of the next one a byte every 0.2 s, for ever: each read is in time, the whole never ends."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                for n in range(2):
                    head = b""
                    while b"\r\n\r\n" not in head:
                        head += conn.recv(4096)
                    if n == 0:
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                        continue
                    for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Drip: " + b"a" * 10_000:
                        conn.sendall(bytes([byte]))
                        if self.stop.wait(0.2):
                            return
            except OSError:
                return


GEVENT_CLIENT = """
from gevent import monkey; monkey.patch_all()
import json, sys, time
from chatconform.load.stream import make_client, call_json
from chatconform.target import Limits, Target
target = Target(sys.argv[1], api_key="k", agent_id="a", limits=Limits(timeout=1, stream_timeout=2))
http = make_client(target, 1)
first = call_json(http, target, "GET", "/one")
t0 = time.monotonic()
second = call_json(http, target, "GET", "/two")
print(json.dumps({"first": first[0], "second": second[0], "error": second[2],
                  "elapsed": time.monotonic() - t0}))
"""


def test_a_load_user_is_not_held_by_headers_dripped_on_a_reused_connection() -> None:
    """Under gevent, on a keep-alive connection (no fresh socket to shut down), the reader's
    watchdog still ends an exchange at its stream deadline, headers included."""
    server = KeepAliveDripServer()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", GEVENT_CLIENT, f"http://127.0.0.1:{server.port}"],
            capture_output=True, text=True, timeout=60, env=_clean_env(),
        )  # fmt: skip
    finally:
        server.stop.set()
        server.sock.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["first"] == 200
    assert out["second"] is None
    assert "outlived its 2 s deadline" in out["error"]
    assert out["elapsed"] < 4.0


def test_a_response_id_echoing_the_key_is_redacted_in_the_sample() -> None:
    tl = Timeline("completions", time.perf_counter_ns())
    tl.response_id = f"chatcmpl-{KEY}"
    sample = tl.to_sample(lambda text: text.replace(KEY, "[redacted]"))
    assert sample["response_id"] == "chatcmpl-[redacted]"
