"""Startup: database, credentials, socket, uvicorn; credentials written once listening."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

from chatconform.reference.agent import KNOWLEDGE_PROMPT, TOOL_PROMPT
from chatconform.reference.app import CALIBRATION_PATH, PREFIX, build_app
from chatconform.reference.auth import KeyRing
from chatconform.reference.calibration import stamped_protocol
from chatconform.reference.context import Context
from chatconform.reference.ratelimit import RateLimiter
from chatconform.reference.sendlog import SendLog
from chatconform.reference.settings import Settings
from chatconform.reference.store import AsyncStore, Store, Tenants
from chatconform.reference.turns import TurnManager


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 0
    db: str | None = None
    credentials_out: str | None = None
    log_level: str = "warning"
    exit_on_stdin_close: bool = False


def _listen(host: str, port: int) -> socket.socket:
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def base_url(host: str, port: int) -> str:
    """The API base URL clients use (a wildcard bind is reached on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{PREFIX}"


ERROR_PROMPT = "Simulate an agent failure, please."  # the scripted agent fails such a turn


def credentials_document(
    url: str, keys: KeyRing, tenants: Tenants, settings: Settings | None = None
) -> dict[str, Any]:
    """The target file a harness reads: keys, agents, the agent's prompts, and whether its replies
    are deterministic (OAI-6 is judged only for an agent that says so)."""
    c = keys.credentials
    settings = settings or Settings()
    return {
        "baseUrl": url,
        "apiKey": c.api_key,
        "readOnlyKey": c.read_only_key,
        "writeOnlyKey": c.write_only_key,
        "otherTenantKey": c.other_tenant_key,
        "otherTenantAgentId": tenants.agent_b,
        "publishableKey": c.publishable_key,
        "agentId": tenants.agent_a,
        "unpublishedAgentId": tenants.unpublished_a,
        "toolPrompt": TOOL_PROMPT,
        "knowledgePrompt": KNOWLEDGE_PROMPT,
        "errorPrompt": ERROR_PROMPT,
        "deterministic": settings.deterministic,
        "pid": os.getpid(),
    }


def write_private_json(path: str, document: dict[str, Any]) -> None:
    """Write ``document`` atomically to ``path`` with mode 0600 (temp file, fsync, rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


async def _serve(
    server: uvicorn.Server, sock: socket.socket, announce: list[str], after: Callable[[], None]
) -> int:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.wait({task}, timeout=0.005)
    if task.done():
        await task
        return 1
    try:
        after()
    except OSError as exc:
        print(f"cannot write the credentials: {exc}", file=sys.stderr, flush=True)
        server.should_exit = True
        await task
        return 1
    for line in announce:
        print(line, flush=True)
    await task
    return 0


def run(settings: Settings, options: ServerOptions) -> int:
    """Serve until SIGTERM/SIGINT; 0 on a clean shutdown, 1 if the server cannot start."""
    logging.basicConfig(level=options.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    if options.db is not None:
        return _run_on(settings, options, options.db)
    tmpdir = tempfile.mkdtemp(prefix="chatconform-reference-")
    try:
        return _run_on(settings, options, os.path.join(tmpdir, "reference.db"))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


#: ``--calibration``: net tracked allocations before a collection (see ``_run_on``)
CALIBRATION_GC_THRESHOLD = 500_000


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def event_loop_and_parser(calibration: bool) -> tuple[str, str]:
    """uvicorn's event loop and HTTP parser: asyncio and h11 always (whatever else is installed),
    except under ``--calibration``, which takes uvloop and httptools when they are installed."""
    if not calibration:
        return "asyncio", "h11"
    return ("uvloop" if _importable("uvloop") else "asyncio",
            "httptools" if _importable("httptools") else "h11")  # fmt: skip


def loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop the server really runs on: uvicorn's ``loop`` setting takes effect only in
    ``uvicorn.run``, and this module runs ``Server.serve`` itself."""
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop  # type: ignore[no-any-return]
    return None


def _end_when_stdin_closes() -> None:
    """SIGTERM to this process once standard input reaches its end: the parent holding the pipe's
    other end has closed it, or died, however it died (SIGKILL included, which no handler sees)."""
    try:
        while os.read(0, 65536):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def _fail(message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    return 1


def _run_on(settings: Settings, options: ServerOptions, db_path: str) -> int:
    try:
        db = AsyncStore(db_path)
    except (OSError, sqlite3.Error) as exc:
        return _fail(f"cannot open the database {db_path}: {exc}")
    try:
        tenants = db.write_sync(Store.tenants)
        keys = KeyRing(tenants)
        limiter = RateLimiter(settings.rate_limit_rps)
        sendlog = SendLog() if settings.calibration else None
        ctx = Context(settings, db, tenants, keys, TurnManager(db, settings), limiter, sendlog)
        try:
            sock = _listen(options.host, options.port)
        except OSError as exc:
            return _fail(f"cannot listen on {options.host}:{options.port}: {exc}")
        url = base_url(options.host, sock.getsockname()[1])
        loop, http = event_loop_and_parser(settings.calibration)
        config = uvicorn.Config(build_app(ctx), log_level=options.log_level, access_log=False,
                                timeout_graceful_shutdown=5, lifespan="on", loop=loop,
                                http=stamped_protocol(http) if settings.calibration else http)  # fmt: skip
        server = uvicorn.Server(config)

        def stop(signum: int, frame: object) -> None:
            server.should_exit = True

        # uvicorn captures SIGINT/SIGTERM while serving, then re-raises them: to this handler.
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        if options.exit_on_stdin_close:
            threading.Thread(target=_end_when_stdin_closes, daemon=True).start()
        out = options.credentials_out

        def write_credentials() -> None:
            if out is not None:
                write_private_json(out, credentials_document(url, keys, tenants, settings))

        where = out if out is not None else "not written (use --credentials-out FILE)"
        announce = [f"chatconform reference server: {url}", f"credentials: {where}"]
        if settings.calibration:
            root = url.removesuffix(PREFIX)
            announce.append(f"calibration: {loop} loop, {http} parser, cyclic GC past "
                            f"{CALIBRATION_GC_THRESHOLD} objects, send times at "
                            f"{root}{CALIBRATION_PATH}")  # fmt: skip
        # What start-up built (modules, the app, the tenants) lives as long as the process: out
        # of the cyclic GC's scans (gc.freeze), a full collection pauses the loop only for what
        # the requests left (at 200 streams in --calibration: 20 ms instead of 37 ms)
        gc.collect()
        gc.freeze()
        if settings.calibration:
            # A served request leaves no cycle (tests/test_reference_cycles.py), yet the young
            # generation's collections still scanned every live stream's objects (5-12 ms at 200
            # streams, collecting nothing): in calibration, a collection only once half a million
            # tracked objects were made and not freed, which a clean run never reaches and a leak
            # of cycles would (so memory stays bounded)
            gc.set_threshold(CALIBRATION_GC_THRESHOLD)
        with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
            code = runner.run(_serve(server, sock, announce, write_credentials))
        # Served: a late second signal must not turn a clean exit into death by signal.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return code
    finally:
        db.close()
