"""Stress the embedded reference server and print figures (issue 7, item 4). Not a test.

Run: ``python benchmarks/stress_reference.py [--streams 200] [--drops 100] [--writers 20]``.

Everything runs on loopback against servers this script starts (``python -m chatconform.reference
--port 0 --rate-limit-rps 0``, each on its own temporary SQLite file) and stops by their own pid.

(a) ``--streams`` concurrent streamed posts, one per session: successes, streams ended by
    ``done``, time to the first delta (p50/p99, measured by the client from sending the request)
    against the server's ``--ttft-ms``, wall time.
(b) ``--drops`` clients that close the connection after 2 events of a streamed reply; then per
    session a plain follow-up post (409 ``session_busy`` retried, bounded) and the history checked
    (MSG-7: the dropped user message kept once, its reply complete or absent, never partial or
    duplicated; the follow-up turn equal to what its post returned).
(c) leaks, out of process: the server's file descriptors, ESTABLISHED / CLOSE_WAIT TCP sockets
    (its socket inodes looked up in ``/proc/<pid>/net/tcp*``), threads and RSS, before (a) and after
    (b) once the clients are gone. The server exposes no task count, so (c2) runs the same app
    in this process (uvicorn in a thread) and counts ``asyncio.all_tasks()`` on its loop before and
    after a round of drops, plus the turn manager's running turns and busy sessions.
(d) ``kill -9`` during a burst: ``--writers`` clients each post plain messages sequentially to their
    own session (zero ttft/itl, so the server is mostly committing); every 200 is recorded with its
    message ids; SIGKILL after ``--kill-after`` s; restart on the same ``--db`` with new keys; repeat
    ``--kill-rounds`` times; finally every answered message must be in the history (lost = 0).
(e) restart keeps every session: ``--sessions`` sessions (a third ended, a third in draft mode)
    created, the server stopped (SIGTERM) and restarted on the same db; every GET is 200 with the
    same fields.

The functions here are also driven, at a smaller scale, by ``tests/test_reference_stress.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
SETTLE_TIMEOUT_S = 10.0
TERMINALS = ("done", "error")


# --------------------------------------------------------------------------- server processes


@dataclass
class Server:
    """A reference server subprocess we started, with its credentials."""

    proc: subprocess.Popen[bytes]
    creds_path: Path
    db: Path
    creds: dict[str, Any] = field(default_factory=dict)
    stderr: Path | None = None

    def tracebacks(self) -> int:
        """Tracebacks the server has logged so far (its stderr file)."""
        if self.stderr is None or not self.stderr.exists():
            return 0
        return self.stderr.read_text(errors="replace").count("Traceback (most recent call last)")

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base(self) -> str:
        return str(self.creds["baseUrl"])

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds['apiKey']}"}

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal our own pid, wait (bounded); SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        return self.proc.returncode


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    return env


def start_server(workdir: Path, db: Path, name: str, *args: str) -> Server:
    """Start a reference server on ``db`` and wait (bounded) for its credentials file."""
    creds = workdir / f"{name}.credentials.json"
    if creds.exists():
        creds.unlink()
    cmd = [sys.executable, "-m", "chatconform.reference", "--port", "0", "--host", "127.0.0.1"]
    cmd += ["--db", str(db), "--credentials-out", str(creds), "--rate-limit-rps", "0", *args]
    stderr = workdir / f"{name}.stderr"
    with open(stderr, "ab") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=_env())
    server = Server(proc, creds, db, stderr=stderr)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if creds.exists():
            server.creds = json.loads(creds.read_text())
            return server
        if proc.poll() is not None:
            raise RuntimeError(f"server {name} exited early with {proc.returncode}")
        time.sleep(0.02)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server {name} did not write its credentials in time")


@contextlib.contextmanager
def running(workdir: Path, db: Path, name: str, *args: str) -> Iterator[Server]:
    server = start_server(workdir, db, name, *args)
    try:
        yield server
    finally:
        server.stop(signal.SIGTERM)


# --------------------------------------------------------------------------- process figures


_TCP_STATES = {"01": "ESTABLISHED", "08": "CLOSE_WAIT", "06": "TIME_WAIT", "0A": "LISTEN"}


def proc_figures(pid: int) -> dict[str, int]:
    """Open fds, TCP sockets by state (the pid's own sockets only), threads and RSS (KiB)."""
    inodes: set[str] = set()
    fds = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        fds += 1
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    figures = {"fds": fds, "ESTABLISHED": 0, "CLOSE_WAIT": 0, "other_tcp": 0}
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as fh:
            next(fh, None)
            for line in fh:
                cols = line.split()
                if len(cols) < 10 or cols[9] not in inodes:
                    continue
                state = _TCP_STATES.get(cols[3], "other")
                if state in ("ESTABLISHED", "CLOSE_WAIT"):
                    figures[state] += 1
                elif state != "LISTEN":
                    figures["other_tcp"] += 1
    with open(f"/proc/{pid}/stat") as fh:
        ticks = fh.read().rpartition(")")[2].split()[11:13]  # utime, stime
    figures["cpu_ms"] = sum(int(t) for t in ticks) * 1000 // os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key == "Threads":
                figures["threads"] = int(value.split()[0])
            elif key == "VmRSS":
                figures["rss_kib"] = int(value.split()[0])
    return figures


async def settle(pid: int, baseline: dict[str, int], timeout: float = SETTLE_TIMEOUT_S) -> float:
    """Wait (bounded) until the pid holds no more connections than at ``baseline``; seconds taken."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        now = proc_figures(pid)
        if (
            now["ESTABLISHED"] <= baseline["ESTABLISHED"]
            and now["CLOSE_WAIT"] <= baseline["CLOSE_WAIT"]
        ):
            break
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


# --------------------------------------------------------------------------- HTTP helpers


def make_client(connections: int, timeout_s: float = 30.0) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    timeout = httpx.Timeout(timeout_s, connect=10.0, pool=timeout_s)
    return httpx.AsyncClient(limits=limits, timeout=timeout)


class Clients:
    """``connections`` connections in all, as pools of ``per_pool``; ``clients[i]`` for request i.

    One httpx pool is fine for correctness but not for timing at this size: httpcore scans every
    connection for every queued request on each request start and close (O(requests x
    connections) per event), so one pool of 200 busy connections costs the CLIENT seconds of CPU
    and shows up as seconds of "TTFT". ``per_pool`` = ``connections`` gives that single pool.
    """

    def __init__(self, connections: int, per_pool: int = 10) -> None:
        per_pool = max(1, min(per_pool, connections))
        pools = -(-connections // per_pool)
        self._clients = [make_client(per_pool) for _ in range(pools)]

    def __getitem__(self, i: int) -> httpx.AsyncClient:
        return self._clients[i % len(self._clients)]

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients))


async def new_session(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], agent_id: str, **extra: Any
) -> dict[str, Any]:
    r = await client.post(
        f"{base}/chat/sessions", json={"agentId": agent_id, **extra}, headers=auth
    )
    if r.status_code != 201:
        raise RuntimeError(f"create session: {r.status_code} {r.text[:200]}")
    data: dict[str, Any] = r.json()["data"]
    return data


async def history(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], sid: str
) -> list[dict[str, Any]]:
    """The whole transcript, paged (bounded to 1000 pages)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        params: dict[str, str | int] = {"limit": 100}
        if cursor is not None:
            params["cursor"] = cursor
        r = await client.get(f"{base}/chat/sessions/{sid}/messages", params=params, headers=auth)
        if r.status_code != 200:
            raise RuntimeError(f"history {sid}: {r.status_code} {r.text[:200]}")
        doc = r.json()
        items.extend(doc["data"])
        cursor = doc["pagination"]["nextCursor"]
        if cursor is None:
            return items
    raise RuntimeError(f"history {sid}: more than 1000 pages")


class Frames:
    """A minimal incremental SSE reader: (event, data) per frame; comment lines ignored."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        self._buf += chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        out: list[tuple[str, str]] = []
        while b"\n\n" in self._buf:
            raw, self._buf = self._buf.split(b"\n\n", 1)
            event, data = "message", []
            for line in raw.decode("utf-8").split("\n"):
                if line.startswith(":") or not line:
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
            if data:
                out.append((event, "\n".join(data)))
        return out


@dataclass
class StreamResult:
    status: int = 0
    events: int = 0
    terminal: str | None = None
    ttft_ms: float | None = None  # from the call (includes the client's own queueing)
    ttft_wire_ms: float | None = None  # from the request's last byte written to the socket
    duration_ms: float = 0.0
    done_lag_ms: float | None = None  # last delta -> terminal frame (the reply's commit)
    deltas: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    dropped: bool = False
    error: str | None = None


async def stream_post(
    client: httpx.AsyncClient,
    base: str,
    auth: dict[str, str],
    sid: str,
    content: str,
    drop_after: int | None = None,
) -> StreamResult:
    """One streamed post; with ``drop_after`` the connection is closed after that many events
    (0: right after the response headers, before reading any of the body)."""
    res = StreamResult()
    t0 = time.perf_counter()
    sent = [t0]

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event == "http11.send_request_body.complete":
            sent[0] = time.perf_counter()

    url = f"{base}/chat/sessions/{sid}/messages"
    last_delta = t0
    try:
        async with client.stream(
            "POST",
            url,
            json={"content": content, "stream": True},
            headers=auth,
            extensions={"trace": trace},
        ) as r:
            res.status = r.status_code
            if r.status_code != 200:
                await r.aread()
                res.error = r.text[:200]
                return res
            if drop_after == 0:
                res.dropped = True
                return res  # leaving the block closes the connection
            reader = Frames()
            async for chunk in r.aiter_raw():
                for event, data in reader.feed(chunk):
                    res.events += 1
                    body = json.loads(data)
                    if event == "agent_message":
                        if res.ttft_ms is None:
                            now = time.perf_counter()
                            res.ttft_ms = (now - t0) * 1000
                            res.ttft_wire_ms = (now - sent[0]) * 1000
                        res.deltas.append(body["payload"]["delta"])
                        last_delta = time.perf_counter()
                    if event in TERMINALS:
                        res.terminal = event
                        res.done_lag_ms = (time.perf_counter() - last_delta) * 1000
                        res.messages = body.get("messages") or []
                if drop_after is not None and res.events >= drop_after and res.terminal is None:
                    res.dropped = True
                    break  # leaving the block closes the connection mid-stream
    except httpx.HTTPError as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    res.duration_ms = (time.perf_counter() - t0) * 1000
    return res


async def plain_post(
    client: httpx.AsyncClient,
    base: str,
    auth: dict[str, str],
    sid: str,
    content: str,
    busy_retries: int = 200,
    busy_sleep_s: float = 0.05,
) -> tuple[httpx.Response, int]:
    """A plain post; a 409 ``session_busy`` is retried (bounded). Returns (response, retries)."""
    url = f"{base}/chat/sessions/{sid}/messages"
    retries = 0
    while True:
        r = await client.post(url, json={"content": content}, headers=auth)
        busy = r.status_code == 409 and r.json().get("code") == "session_busy"
        if not busy or retries >= busy_retries:
            return r, retries
        retries += 1
        await asyncio.sleep(busy_sleep_s)


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def expected_reply(content: str, tokens: int) -> str:
    """The scripted agent's reply text for ``content`` (deterministic from the text alone)."""
    from chatconform.reference.agent import plan_turn

    return plan_turn(content, tokens).reply


# --------------------------------------------------------------------------- (a) streams


@dataclass
class StreamFigures:
    sessions: int = 0
    ok_200: int = 0
    done: int = 0
    errors: list[str] = field(default_factory=list)
    ttft_p50_ms: float = 0.0
    ttft_p99_ms: float = 0.0
    ttft_max_ms: float = 0.0
    wire_p50_ms: float = 0.0
    wire_p99_ms: float = 0.0
    done_lag_p50_ms: float = 0.0
    done_lag_p99_ms: float = 0.0
    wall_s: float = 0.0
    client_cpu_ms: int = 0
    replies_match: int = 0


async def concurrent_streams(
    server: Server, n: int, tokens: int, per_pool: int = 10
) -> StreamFigures:
    """``n`` streamed posts at once, one per session, over ``n`` connections."""
    fig = StreamFigures(sessions=n)
    async with Clients(n, per_pool) as clients:
        sessions = await asyncio.gather(
            *(
                new_session(clients[i], server.base, server.auth, server.creds["agentId"])
                for i in range(n)
            )
        )
        contents = [f"stress stream {i}" for i in range(n)]
        t0, cpu0 = time.perf_counter(), time.process_time()
        results = await asyncio.gather(
            *(
                stream_post(clients[i], server.base, server.auth, s["id"], c)
                for i, (s, c) in enumerate(zip(sessions, contents, strict=True))
            )
        )
        fig.wall_s = time.perf_counter() - t0
        fig.client_cpu_ms = round((time.process_time() - cpu0) * 1000)
    ttfts = [r.ttft_ms for r in results if r.ttft_ms is not None]
    fig.ttft_p50_ms = percentile(ttfts, 50)
    fig.ttft_p99_ms = percentile(ttfts, 99)
    fig.ttft_max_ms = max(ttfts, default=float("nan"))
    wire = [r.ttft_wire_ms for r in results if r.ttft_wire_ms is not None]
    fig.wire_p50_ms = percentile(wire, 50)
    fig.wire_p99_ms = percentile(wire, 99)
    lags = [r.done_lag_ms for r in results if r.done_lag_ms is not None]
    fig.done_lag_p50_ms = percentile(lags, 50)
    fig.done_lag_p99_ms = percentile(lags, 99)
    for r, c in zip(results, contents, strict=True):
        fig.ok_200 += r.status == 200
        fig.done += r.terminal == "done"
        reply = expected_reply(c, tokens)
        fig.replies_match += (
            "".join(r.deltas) == reply
            and r.messages[-1:] != []
            and (r.messages[-1]["content"] == reply)
        )
        if r.error is not None or r.terminal != "done":
            fig.errors.append(f"{r.status} {r.terminal} {r.error}")
    return fig


# --------------------------------------------------------------------------- (b) drops


@dataclass
class DropFigures:
    clients: int = 0
    dropped_mid_stream: int = 0
    follow_up_ok: int = 0
    busy_retries: int = 0
    sessions_busy_at_follow_up: int = 0
    well_formed: int = 0
    reply_complete: int = 0
    reply_absent: int = 0
    reply_partial: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)


def check_drop_history(
    items: list[dict[str, Any]], dropped: str, follow_up: list[dict[str, Any]], tokens: int
) -> tuple[str, list[str]]:
    """MSG-7 on one session: ('complete'|'absent'|'partial', problems)."""
    problems: list[str] = []
    ids = [m["id"] for m in items]
    if len(set(ids)) != len(ids):
        problems.append("duplicated message ids")
    users = [m for m in items if m["role"] == "user"]
    if [m["content"] for m in users] != [dropped, follow_up[0]["content"]]:
        problems.append(f"user messages {[m['content'] for m in users]!r}")
    if items[-len(follow_up) :] != follow_up:
        problems.append("the follow-up turn differs from what its post returned (MSG-5)")
    first_turn = items[: len(items) - len(follow_up)]
    if not first_turn or first_turn[0]["role"] != "user" or first_turn[0]["content"] != dropped:
        problems.append("the dropped turn does not start with its user message")
        return "partial", problems
    replies = [m for m in first_turn[1:] if m["role"] == "assistant"]
    if not replies:
        return ("absent" if len(first_turn) == 1 else "partial"), problems
    if len(replies) > 1:
        problems.append("the dropped turn's reply is duplicated")
        return "partial", problems
    if replies[0]["content"] != expected_reply(dropped, tokens):
        problems.append(f"partial reply {replies[0]['content']!r}")
        return "partial", problems
    return "complete", problems


async def drop_round(
    base: str,
    auth: dict[str, str],
    agent_id: str,
    n: int,
    tokens: int,
    tag: str = "drop",
    drop_after: int = 2,
) -> DropFigures:
    fig = DropFigures(clients=n)
    async with Clients(n) as clients:
        sessions = await asyncio.gather(
            *(new_session(clients[i], base, auth, agent_id) for i in range(n))
        )
        sids = [s["id"] for s in sessions]
        contents = [f"{tag} mid-stream {i}" for i in range(n)]
        drops = await asyncio.gather(
            *(
                stream_post(clients[i], base, auth, sid, c, drop_after=drop_after)
                for i, (sid, c) in enumerate(zip(sids, contents, strict=True))
            )
        )
        fig.dropped_mid_stream = sum(d.dropped for d in drops)
        # a late drop may lose the race with ``done``: not dropped then, but no problem either
        fig.problems += [
            f"drop {d.status} {d.error}" for d in drops if not d.dropped and d.terminal != "done"
        ]

        async def follow(sid: str, i: int) -> tuple[httpx.Response, int]:
            return await plain_post(clients[i], base, auth, sid, f"{tag} follow-up {i}")

        follows = await asyncio.gather(*(follow(sid, i) for i, sid in enumerate(sids)))
        histories = await asyncio.gather(
            *(history(clients[i], base, auth, sid) for i, sid in enumerate(sids))
        )
    for (resp, retries), items, dropped in zip(follows, histories, contents, strict=True):
        fig.busy_retries += retries
        fig.sessions_busy_at_follow_up += retries > 0
        if resp.status_code != 200:
            fig.problems.append(f"follow-up {resp.status_code} {resp.text[:120]}")
            continue
        fig.follow_up_ok += 1
        state, problems = check_drop_history(
            items, dropped, resp.json()["data"]["messages"], tokens
        )
        fig.reply_complete += state == "complete"
        fig.reply_absent += state == "absent"
        fig.reply_partial += state == "partial"
        fig.duplicated += any("duplicated" in p for p in problems)
        fig.well_formed += not problems and state != "partial"
        fig.problems += problems
    return fig


async def half_bodies(server: Server, n: int) -> int:
    """``n`` clients that send a post's headers and part of its body, then close the connection.

    Raw sockets (an HTTP client always sends whole bodies). Returns how many were sent.
    """
    async with make_client(2) as client:
        s = await new_session(client, server.base, server.auth, server.creds["agentId"])
    host, _, rest = server.base.removeprefix("http://").partition(":")
    port = int(rest.split("/", 1)[0])
    path = "/" + rest.split("/", 1)[1] + f"/chat/sessions/{s['id']}/messages"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: {server.auth['Authorization']}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    ).encode()

    async def one() -> None:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        writer.write(head + b'{"content": "half a bo')
        await writer.drain()
        await asyncio.sleep(0.05)  # the server is now waiting for the rest of the body
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    await asyncio.gather(*(one() for _ in range(n)))
    return n


# --------------------------------------------------------------------------- (c2) tasks, in process


@dataclass
class InProcess:
    """The reference app served by uvicorn on a thread of this process (its loop inspectable)."""

    base: str
    auth: dict[str, str]
    agent_id: str
    loop: asyncio.AbstractEventLoop
    ctx: Any
    server: Any
    thread: threading.Thread

    def call(self, fn: Any, timeout: float = 5.0) -> Any:
        """Run the coroutine function ``fn()`` on the server's loop."""
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    def task_count(self) -> int:
        async def count() -> int:
            return len(asyncio.all_tasks()) - 1  # not this one

        return int(self.call(count))

    def turns_running(self) -> tuple[int, int]:
        """(running turn tasks, busy sessions) of the turn manager."""
        turns = self.ctx.turns
        return len(turns._tasks), len(turns._busy)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(STOP_TIMEOUT_S)
        self.ctx.db.close()


def start_in_process(db: Path, ttft_ms: int, itl_ms: int, tokens: int) -> InProcess:
    import uvicorn

    from chatconform.reference.app import build_app
    from chatconform.reference.auth import KeyRing
    from chatconform.reference.context import Context
    from chatconform.reference.ratelimit import RateLimiter
    from chatconform.reference.server import base_url
    from chatconform.reference.settings import Settings
    from chatconform.reference.store import AsyncStore, Store
    from chatconform.reference.turns import TurnManager

    settings = Settings(ttft_ms, itl_ms, tokens, 0)
    store = AsyncStore(str(db))
    tenants = store.write_sync(Store.tenants)
    keys = KeyRing(tenants)
    ctx = Context(settings, store, tenants, keys, TurnManager(store, settings), RateLimiter(0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    config = uvicorn.Config(
        build_app(ctx),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    box: list[asyncio.AbstractEventLoop] = []

    def serve() -> None:
        async def main() -> None:
            box.append(asyncio.get_running_loop())
            await server.serve(sockets=[sock])

        asyncio.run(main())

    thread = threading.Thread(target=serve, name="reference-in-process", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (server.started and box) and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError("in-process server did not start")
    auth = {"Authorization": f"Bearer {keys.credentials.api_key}"}
    url = base_url("127.0.0.1", sock.getsockname()[1])
    return InProcess(url, auth, tenants.agent_a, box[0], ctx, server, thread)


@dataclass
class TaskFigures:
    tasks_before: int = 0
    tasks_after: int = 0
    turns_after: int = 0
    busy_after: int = 0
    drops: DropFigures = field(default_factory=DropFigures)
    settle_s: float = 0.0


async def in_process_tasks(db: Path, n: int, ttft_ms: int, itl_ms: int, tokens: int) -> TaskFigures:
    fig = TaskFigures()
    srv = await asyncio.to_thread(start_in_process, db, ttft_ms, itl_ms, tokens)
    try:
        async with make_client(4) as client:  # warm-up: one full turn, then the client is gone
            s = await new_session(client, srv.base, srv.auth, srv.agent_id)
            await stream_post(client, srv.base, srv.auth, s["id"], "warm-up")
        await asyncio.sleep(0.2)
        fig.tasks_before = await asyncio.to_thread(srv.task_count)
        fig.drops = await drop_round(srv.base, srv.auth, srv.agent_id, n, tokens, tag="tasks")
        t0 = time.monotonic()
        while time.monotonic() - t0 < SETTLE_TIMEOUT_S:
            fig.tasks_after = await asyncio.to_thread(srv.task_count)
            fig.turns_after, fig.busy_after = srv.turns_running()
            if fig.tasks_after <= fig.tasks_before and fig.turns_after == fig.busy_after == 0:
                break
            await asyncio.sleep(0.05)
        fig.settle_s = time.monotonic() - t0
    finally:
        await asyncio.to_thread(srv.stop)
    return fig


# --------------------------------------------------------------------------- (d) kill -9


@dataclass
class KillFigures:
    rounds: int = 0
    writers: int = 0
    answered_posts: int = 0
    answered_messages: int = 0
    in_flight_at_kill: int = 0
    in_flight_user_kept: int = 0
    in_flight_reply_kept: int = 0
    lost: int = 0
    changed: int = 0
    sessions_readable: int = 0
    created_in_burst: int = 0
    created_missing: int = 0
    posts_per_s: float = 0.0
    lost_examples: list[str] = field(default_factory=list)


async def _writer(
    client: httpx.AsyncClient,
    base: str,
    auth: dict[str, str],
    sid: str,
    w: int,
    start: int,
    stop_at: float,
    max_posts: int,
    answered: list[dict[str, Any]],
    pending: dict[str, str],
) -> int:
    """Post sequentially until an error (the kill) or the bounds; returns the next post number."""
    url = f"{base}/chat/sessions/{sid}/messages"
    k = start
    while k < start + max_posts and time.monotonic() < stop_at:
        content = f"writer {w} post {k}"
        pending[sid] = content
        try:
            r = await client.post(url, json={"content": content}, headers=auth)
        except httpx.HTTPError:
            return k  # the server died with this post unanswered (left in ``pending``)
        del pending[sid]
        k += 1
        if r.status_code != 200:
            continue
        answered.extend(r.json()["data"]["messages"])
    return k


async def _creator(
    client: httpx.AsyncClient,
    base: str,
    auth: dict[str, str],
    agent_id: str,
    stop_at: float,
    max_creates: int,
    created: list[str],
) -> None:
    """Create sessions one after another until an error (the kill) or the bounds."""
    for _ in range(max_creates):
        if time.monotonic() >= stop_at:
            return
        try:
            r = await client.post(f"{base}/chat/sessions", json={"agentId": agent_id}, headers=auth)
        except httpx.HTTPError:
            return
        if r.status_code == 201:
            created.append(r.json()["data"]["id"])


async def kill_burst(
    workdir: Path, db: Path, writers: int, rounds: int, kill_after_s: float, tokens: int
) -> KillFigures:
    fig = KillFigures(rounds=rounds, writers=writers)
    flags = ("--ttft-ms", "0", "--itl-ms", "0", "--tokens", str(tokens))
    answered: list[dict[str, Any]] = []
    in_flight: dict[str, str] = {}  # sid -> content of a post the kill left unanswered
    created_in_burst: list[str] = []  # sessions answered 201 by a creator running alongside
    sids: list[str] = []
    next_post = [0] * writers
    busy_s = 0.0
    for rnd in range(rounds):
        server = start_server(workdir, db, f"kill-{rnd}", *flags)
        try:
            async with make_client(writers + 5) as client:
                if not sids:
                    created = await asyncio.gather(
                        *(
                            new_session(client, server.base, server.auth, server.creds["agentId"])
                            for _ in range(writers)
                        )
                    )
                    sids = [s["id"] for s in created]
                pending: dict[str, str] = {}
                t0 = time.monotonic()
                stop_at = t0 + kill_after_s + 5.0  # writers stop on their own if the kill misses
                tasks = [
                    asyncio.create_task(
                        _writer(
                            client,
                            server.base,
                            server.auth,
                            sid,
                            w,
                            next_post[w],
                            stop_at,
                            10_000,
                            answered,
                            pending,
                        )
                    )
                    for w, sid in enumerate(sids)
                ]
                creator = asyncio.create_task(
                    _creator(
                        client,
                        server.base,
                        server.auth,
                        server.creds["agentId"],
                        stop_at,
                        10_000,
                        created_in_burst,
                    )
                )
                await asyncio.sleep(kill_after_s)
                server.proc.send_signal(signal.SIGKILL)  # kill -9, mid-burst
                busy_s += time.monotonic() - t0
                await asyncio.wait([creator], timeout=30)
                done, _ = await asyncio.wait(tasks, timeout=30)
                next_post = [t.result() for t in tasks] if len(done) == len(tasks) else next_post
                in_flight.update(pending)
        finally:
            server.stop(signal.SIGKILL)
            # the next round continues after the numbers used so far
            next_post = [n + 1 for n in next_post]
    fig.answered_messages = len(answered)
    fig.answered_posts = sum(m["role"] == "user" for m in answered)
    fig.posts_per_s = fig.answered_posts / busy_s if busy_s else 0.0
    fig.in_flight_at_kill = len(in_flight)
    with running(workdir, db, "kill-verify") as server:
        async with make_client(writers + 5) as client:
            gets = await asyncio.gather(
                *(
                    client.get(f"{server.base}/chat/sessions/{sid}", headers=server.auth)
                    for sid in sids
                )
            )
            fig.sessions_readable = sum(r.status_code == 200 for r in gets)
            burst_gets = await asyncio.gather(
                *(
                    client.get(f"{server.base}/chat/sessions/{sid}", headers=server.auth)
                    for sid in created_in_burst
                )
            )
            fig.created_in_burst = len(created_in_burst)
            fig.created_missing = sum(r.status_code != 200 for r in burst_gets)
            histories = await asyncio.gather(
                *(history(client, server.base, server.auth, sid) for sid in sids)
            )
    stored = {m["id"]: m for items in histories for m in items}
    for m in answered:
        if m["id"] not in stored:
            fig.lost += 1
            if len(fig.lost_examples) < 5:
                fig.lost_examples.append(f"{m['role']} {m['content'][:40]!r}")
        elif stored[m["id"]] != m:
            fig.changed += 1
    for sid, items in zip(sids, histories, strict=True):
        content = in_flight.get(sid)
        if content is None:
            continue
        users = [i for i, m in enumerate(items) if m["role"] == "user" and m["content"] == content]
        fig.in_flight_user_kept += bool(users)
        after = users[-1] + 1 if users else len(items)
        fig.in_flight_reply_kept += after < len(items) and items[after]["role"] != "user"
    return fig


# --------------------------------------------------------------------------- (e) restart


@dataclass
class RestartFigures:
    sessions: int = 0
    get_200: int = 0
    same_fields: int = 0
    mismatches: list[str] = field(default_factory=list)


async def restart_keeps_sessions(workdir: Path, db: Path, n: int) -> RestartFigures:
    fig = RestartFigures(sessions=n)
    expected: dict[str, dict[str, Any]] = {}
    with running(workdir, db, "restart-1") as server:
        async with make_client(min(n, 100) + 5) as client:
            agent = server.creds["agentId"]
            draft_agent = server.creds["unpublishedAgentId"]
            created = await asyncio.gather(
                *(
                    new_session(
                        client,
                        server.base,
                        server.auth,
                        draft_agent if i % 3 == 1 else agent,
                        **({"draftMode": True} if i % 3 == 1 else {}),
                    )
                    for i in range(n)
                )
            )
            for i, s in enumerate(created):
                if i % 3 == 2:
                    r = await client.post(
                        f"{server.base}/chat/sessions/{s['id']}/end", headers=server.auth
                    )
                    s = r.json()["data"]
                expected[s["id"]] = s
        code = server.stop(signal.SIGTERM)
        if code != 0:
            fig.mismatches.append(f"first server exited {code} on SIGTERM")
    with running(workdir, db, "restart-2") as server:
        async with make_client(min(n, 100) + 5) as client:
            gets = await asyncio.gather(
                *(
                    client.get(f"{server.base}/chat/sessions/{sid}", headers=server.auth)
                    for sid in expected
                )
            )
    for (sid, want), r in zip(expected.items(), gets, strict=True):
        if r.status_code != 200:
            fig.mismatches.append(f"{sid}: {r.status_code}")
            continue
        fig.get_200 += 1
        got = r.json()["data"]
        if got == want:
            fig.same_fields += 1
        elif len(fig.mismatches) < 5:
            fig.mismatches.append(f"{sid}: {want} != {got}")
    return fig


# --------------------------------------------------------------------------- main


def _row(name: str, value: object, note: str = "") -> str:
    return f"  {name:<44} {value!s:>14}  {note}"


async def main_async(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="chatconform-stress-"))
    flags = (
        "--ttft-ms",
        str(args.ttft_ms),
        "--itl-ms",
        str(args.itl_ms),
        "--tokens",
        str(args.tokens),
    )
    rows: list[str] = []
    ok = True
    print(
        f"stress_reference: workdir {workdir}; server {' '.join(flags)} --rate-limit-rps 0",
        flush=True,
    )
    with running(workdir, workdir / "main.db", "main", *flags) as server:
        async with make_client(4) as client:  # warm-up, then the client is gone
            s = await new_session(client, server.base, server.auth, server.creds["agentId"])
            await stream_post(client, server.base, server.auth, s["id"], "warm-up")
        await asyncio.sleep(0.3)
        before = proc_figures(server.pid)

        a = await concurrent_streams(server, args.streams, args.tokens, args.per_pool)
        after_a_settle = await settle(server.pid, before)
        after_a = proc_figures(server.pid)
        one = await concurrent_streams(server, args.streams, args.tokens, args.streams)
        await settle(server.pid, before)
        rows += [
            f"(a) concurrent streamed posts (httpx pools of {args.per_pool} connections)",
            _row(
                "CPU (ms): server (incl. session creation) / client",
                f"{after_a['cpu_ms'] - before['cpu_ms']} / {a.client_cpu_ms}",
                f"{os.cpu_count()} CPUs shared by client and server",
            ),
            _row("streams (one session each)", a.sessions),
            _row("HTTP 200", a.ok_200),
            _row("ended by event: done", a.done),
            _row("deltas == done reply == scripted reply", a.replies_match),
            _row("TTFT p50 (ms)", f"{a.ttft_p50_ms:.1f}", f"server --ttft-ms {args.ttft_ms}"),
            _row("TTFT p99 (ms)", f"{a.ttft_p99_ms:.1f}"),
            _row("TTFT max (ms)", f"{a.ttft_max_ms:.1f}"),
            _row(
                "TTFT from request on the wire p50 / p99 (ms)",
                f"{a.wire_p50_ms:.0f} / {a.wire_p99_ms:.0f}",
            ),
            _row(
                "last delta -> done p50 / p99 (ms)",
                f"{a.done_lag_p50_ms:.0f} / {a.done_lag_p99_ms:.0f}",
                "done waits for the reply's commit (fsync)",
            ),
            _row(
                "wall time, all streams (s)",
                f"{a.wall_s:.2f}",
                f"one stream ≈ {(args.ttft_ms + (args.tokens - 1) * args.itl_ms) / 1000:.2f} s"
                " of scripted latency",
            ),
            f"(a') the same through ONE httpx pool of {args.streams} connections (client-bound)",
            _row("HTTP 200 / done", f"{one.ok_200} / {one.done}"),
            _row("TTFT p50 / p99 (ms)", f"{one.ttft_p50_ms:.0f} / {one.ttft_p99_ms:.0f}"),
            _row(
                "TTFT from request on the wire p50 / p99 (ms)",
                f"{one.wire_p50_ms:.0f} / {one.wire_p99_ms:.0f}",
            ),
            _row("wall time (s)", f"{one.wall_s:.2f}"),
        ]
        ok &= a.ok_200 == a.done == a.replies_match == args.streams
        # (a') is informational (client-bound): its slow pool can hold a connection idle past
        # the server's keep-alive timeout (uvicorn: 5 s) and lose the reuse race; not counted.

        b = await drop_round(
            server.base, server.auth, server.creds["agentId"], args.drops, args.tokens
        )
        other = {
            at: await drop_round(
                server.base,
                server.auth,
                server.creds["agentId"],
                max(1, args.drops // 2),
                args.tokens,
                f"drop@{at}",
                at,
            )
            for at in (0, args.tokens)
        }
        halves = await half_bodies(server, max(1, args.drops // 2))
        settle_s = await settle(server.pid, before)
        after = proc_figures(server.pid)
        rows += [
            "(b) clients dropping mid-stream after 2 events (MSG-7)",
            _row("clients", b.clients),
            _row("closed the connection mid-stream", b.dropped_mid_stream),
            _row("follow-up post 200", b.follow_up_ok),
            _row(
                "  sessions still busy at follow-up (409)",
                b.sessions_busy_at_follow_up,
                f"{b.busy_retries} retries in all",
            ),
            _row("histories well formed", b.well_formed),
            _row("  dropped reply complete / absent", f"{b.reply_complete} / {b.reply_absent}"),
            _row("  dropped reply partial / duplicated", f"{b.reply_partial} / {b.duplicated}"),
        ]
        ok &= b.dropped_mid_stream == b.follow_up_ok == b.well_formed == args.drops
        ok &= b.reply_partial == b.duplicated == 0
        rows.append(
            "(b') other drop points: clients / dropped / follow-up 200 / well formed /"
            " reply complete, absent, partial, duplicated"
        )
        for at, o in other.items():
            where = "right after the headers" if at == 0 else f"after {at} events (last delta)"
            rows.append(
                _row(
                    f"  {where}",
                    f"{o.clients} / {o.dropped_mid_stream} / "
                    f"{o.follow_up_ok} / {o.well_formed} / {o.reply_complete}, "
                    f"{o.reply_absent}, {o.reply_partial}, {o.duplicated}",
                )
            )
            ok &= o.follow_up_ok == o.well_formed == o.clients and not o.problems
            ok &= o.reply_partial == o.duplicated == 0
        logged = server.tracebacks()
        rows.append(_row("  clients leaving mid-request-body", halves, "raw sockets"))
        rows.append(_row("server tracebacks logged, all of (a)-(b')", logged, "must be 0"))
        ok &= logged == 0
        rows.append("(c) server process (pid, /proc): before (a) -> after (a) -> after (b, b')")
        for key in ("fds", "ESTABLISHED", "CLOSE_WAIT", "other_tcp", "threads", "rss_kib"):
            rows.append(_row(key, f"{before[key]} -> {after_a[key]} -> {after[key]}"))
        rows.append(
            _row("settle time after (a) / (b) (s)", f"{after_a_settle:.2f} / {settle_s:.2f}")
        )
        ok &= after["fds"] <= before["fds"] + 2 and after["ESTABLISHED"] <= before["ESTABLISHED"]
        ok &= after["CLOSE_WAIT"] == 0

    t = await in_process_tasks(
        workdir / "inproc.db", args.drops, args.ttft_ms, args.itl_ms, args.tokens
    )
    rows += [
        "(c2) asyncio tasks, same app in process (uvicorn on a thread), drops as in (b)",
        _row(
            "tasks on the server loop before -> after",
            f"{t.tasks_before} -> {t.tasks_after}",
            f"settled in {t.settle_s:.2f} s",
        ),
        _row("running turns / busy sessions after", f"{t.turns_after} / {t.busy_after}"),
        _row(
            "dropped / follow-up 200 / well formed",
            f"{t.drops.dropped_mid_stream} / {t.drops.follow_up_ok} / {t.drops.well_formed}",
        ),
    ]
    ok &= t.tasks_after <= t.tasks_before and t.turns_after == t.busy_after == 0
    ok &= t.drops.well_formed == args.drops

    d = await kill_burst(
        workdir, workdir / "kill.db", args.writers, args.kill_rounds, args.kill_after, args.tokens
    )
    rows += [
        f"(d) kill -9 during a burst of plain posts ({d.writers} writers, {d.rounds} kills)",
        _row("answered posts (200)", d.answered_posts, f"≈ {d.posts_per_s:.0f} posts/s"),
        _row("answered messages (ids returned)", d.answered_messages),
        _row("lost after restart", d.lost, "must be 0"),
        _row("changed after restart", d.changed, "must be 0"),
        _row("sessions readable with the new key", f"{d.sessions_readable}/{d.writers}"),
        _row(
            "sessions created (201) during the bursts",
            d.created_in_burst,
            "by one more client, alongside",
        ),
        _row("  of which missing after restart", d.created_missing, "must be 0"),
        _row("posts unanswered at a kill", d.in_flight_at_kill),
        _row(
            "  of which user message / reply stored",
            f"{d.in_flight_user_kept} / {d.in_flight_reply_kept}",
        ),
    ]
    ok &= d.lost == d.changed == d.created_missing == 0 and d.sessions_readable == d.writers
    ok &= d.answered_posts > 0 and d.created_in_burst > 0

    e = await restart_keeps_sessions(workdir, workdir / "restart.db", args.sessions)
    rows += [
        "(e) restart (SIGTERM, same --db, new keys) keeps every session",
        _row("sessions (1/3 draft, 1/3 ended)", e.sessions),
        _row("GET 200 after restart", e.get_200),
        _row("same fields", e.same_fields),
    ]
    ok &= e.get_200 == e.same_fields == args.sessions

    print("\n".join(rows))
    problems = (
        a.errors[:5]
        + b.problems[:5]
        + [p for o in other.values() for p in o.problems[:5]]
        + t.drops.problems[:5]
        + d.lost_examples
    )
    problems += e.mismatches[:5]
    problems += [f"(a', informational) {err}" for err in one.errors[:5]]
    for p in problems:
        print("  problem:", p)
    print("RESULT:", "all invariants hold" if ok else "INVARIANT BROKEN")
    if ok:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"server logs kept in {workdir}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--streams", type=int, default=200, help="concurrent streams in (a)")
    p.add_argument(
        "--per-pool", type=int, default=10, help="connections per httpx pool in (a) (see Clients)"
    )
    p.add_argument("--drops", type=int, default=100, help="mid-stream drops in (b) and (c2)")
    p.add_argument("--writers", type=int, default=20, help="concurrent writers in (d)")
    p.add_argument("--kill-rounds", type=int, default=3, help="kill -9 + restart rounds in (d)")
    p.add_argument("--kill-after", type=float, default=1.5, help="seconds of burst before a kill")
    p.add_argument("--sessions", type=int, default=300, help="sessions across the restart in (e)")
    p.add_argument("--ttft-ms", type=int, default=50, help="server --ttft-ms for (a)-(c2)")
    p.add_argument("--itl-ms", type=int, default=10, help="server --itl-ms for (a)-(c2)")
    p.add_argument("--tokens", type=int, default=24, help="server --tokens")
    args = p.parse_args(argv)
    return asyncio.run(asyncio.wait_for(main_async(args), timeout=600))


if __name__ == "__main__":
    raise SystemExit(main())
