"""Small loopback servers that misbehave on purpose, for the robustness self-tests."""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterator

FRAME = (
    b'event: agent_message\ndata: {"id":"e1","conversationId":"s","seq":1,"tsMs":1,'
    b'"channel":"chat","eventType":"agent_message","payload":{"messageId":"m","delta":"hi"}}\n\n'
)
SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
MODES = (
    "silent", "head-stall", "stall", "endless", "drip", "huge", "bad-utf8", "reset", "redirect",
)  # fmt: skip
# modes a StreamProxy applies to streams only (every other answer comes from a correct upstream)
STREAM_MODES = ("stall", "endless", "drip", "huge", "bad-utf8", "reset")


class HostileServer:
    """Answers every request on 127.0.0.1 the same hostile way, until stop()."""

    def __init__(self, mode: str, redirect_to: str = "", host: str = "127.0.0.1") -> None:
        assert mode in MODES or mode == "recorder"
        self.mode = mode
        self.redirect_to = redirect_to
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.host = host
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/v1"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> bytes:
        conn.settimeout(2)
        data = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        self.requests.append(data.split(b"\r\n\r\n", 1)[0])
        return data

    def _handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            self._read_request(conn)
            getattr(self, "_" + self.mode.replace("-", "_"))(conn)

    def _wait(self, seconds: float) -> bool:
        return not self._stop.wait(seconds)

    # -- the modes ----------------------------------------------------------------------------
    def _silent(self, conn: socket.socket) -> None:
        while self._wait(0.1):
            pass

    def _head_stall(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
        while self._wait(0.1):
            pass

    def _stall(self, conn: socket.socket) -> None:
        conn.sendall(SSE_HEAD + FRAME + FRAME)
        while self._wait(0.1):
            pass

    def _endless(self, conn: socket.socket) -> None:
        conn.sendall(SSE_HEAD)
        while self._wait(0.005):
            conn.sendall(FRAME)

    def _drip(self, conn: socket.socket) -> None:
        for byte in SSE_HEAD + FRAME * 1000:
            conn.sendall(bytes([byte]))
            if not self._wait(1.0):
                return

    def _huge(self, conn: socket.socket) -> None:
        conn.sendall(SSE_HEAD + b"data: ")
        block = b"a" * (1 << 20)
        for _ in range(200):  # a 200 MB data line
            conn.sendall(block)
            if self._stop.is_set():
                return

    def _bad_utf8(self, conn: socket.socket) -> None:
        bad = FRAME.replace(b'"hi"', b'"h\\u00e9 \xff\xfe"')
        conn.sendall(SSE_HEAD + bad + b"event: done\ndata: {}\n\n")

    def _reset(self, conn: socket.socket) -> None:
        conn.sendall(SSE_HEAD + FRAME + FRAME[:40])
        time.sleep(0.05)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _redirect(self, conn: socket.socket) -> None:
        head = (
            "HTTP/1.1 307 Temporary Redirect\r\n"
            f"Location: {self.redirect_to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        conn.sendall(head.encode())

    def _recorder(self, conn: socket.socket) -> None:
        body = b'{"success":true,"data":{}}'
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        conn.sendall(head.encode() + body)


class StreamProxy(HostileServer):
    """A correct target (the upstream, e.g. the reference) whose every event stream is replaced
    by a hostile one: JSON answers pass through unchanged, so the rest can still be judged."""

    def __init__(self, mode: str, upstream: str) -> None:
        assert mode in STREAM_MODES, mode
        parts = urllib.parse.urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        super().__init__(mode)

    def _handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            data = self._read_request(conn)
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), 0))
            conn.settimeout(5)
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            up = http.client.HTTPConnection(*self.upstream, timeout=30)
            try:
                up.request(method, path, body=body or None, headers=headers)
                resp = up.getresponse()
                if resp.getheader("content-type", "").startswith("text/event-stream"):
                    getattr(self, "_" + self.mode.replace("-", "_"))(conn)
                    return
                payload = resp.read()
                out = [f"HTTP/1.1 {resp.status} {resp.reason}"]
                skip = {"content-length", "transfer-encoding", "connection"}
                out += [f"{k}: {v}" for k, v in resp.getheaders() if k.lower() not in skip]
                out += [f"Content-Length: {len(payload)}", "Connection: close", "", ""]
                conn.sendall("\r\n".join(out).encode("latin-1") + payload)
            finally:
                up.close()


@contextlib.contextmanager
def stream_proxy(mode: str, upstream: str) -> Iterator[StreamProxy]:
    server = StreamProxy(mode, upstream)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def hostile(mode: str, redirect_to: str = "", host: str = "127.0.0.1") -> Iterator[HostileServer]:
    server = HostileServer(mode, redirect_to, host)
    try:
        yield server
    finally:
        server.stop()
