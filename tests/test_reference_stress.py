"""Bounded stress self-tests of the reference server (issue 7, item 4): correctness, not speed.

They drive ``benchmarks/stress_reference.py`` (the figures script) at a smaller scale: 50
concurrent streams all end in ``done``; clients dropping mid-stream leave every session usable and
its history well formed (MSG-7), with no descriptor, connection or asyncio task left behind; a
``kill -9`` during a burst of writes loses no answered message or session; a restart keeps every
session; a client leaving before its request body is complete is not a server error (no
traceback). Every server runs on loopback on its own temporary database and is stopped by its pid.
"""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TOKENS = 8
# Long enough (20 + 7 x 20 ms) that a drop after 2 events is really mid-stream.
FLAGS = ("--ttft-ms", "20", "--itl-ms", "20", "--tokens", str(TOKENS))
FD_SLACK = 2

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="the leak figures read /proc (Linux only)"
)


def _load_stress() -> ModuleType:
    path = REPO / "benchmarks" / "stress_reference.py"
    spec = importlib.util.spec_from_file_location("stress_reference", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stress_reference"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


sr = _load_stress()


def run(coro: Any, timeout: float = 60.0) -> Any:
    """Run one coroutine to completion, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    workdir = tmp_path_factory.mktemp("stress")
    srv = sr.start_server(workdir, workdir / "stress.db", "stress", *FLAGS)
    try:
        yield srv
    finally:
        assert srv.stop(signal.SIGTERM) == 0


def _warm_up(srv: Any) -> None:
    async def go() -> None:
        async with sr.make_client(2) as client:
            s = await sr.new_session(client, srv.base, srv.auth, srv.creds["agentId"])
            await sr.stream_post(client, srv.base, srv.auth, s["id"], "warm-up")

    run(go())


def test_fifty_concurrent_streams_all_end_in_done(server: Any) -> None:
    fig = run(sr.concurrent_streams(server, 50, TOKENS))
    assert fig.errors == []
    assert fig.ok_200 == fig.done == fig.replies_match == 50


def test_mid_stream_drops_leave_sessions_usable_and_nothing_behind(server: Any) -> None:
    _warm_up(server)
    before = sr.proc_figures(server.pid)
    drops = run(sr.drop_round(server.base, server.auth, server.creds["agentId"], 20, TOKENS))
    early = run(
        sr.drop_round(server.base, server.auth, server.creds["agentId"], 5, TOKENS, "early", 0)
    )
    for fig, n in ((drops, 20), (early, 5)):
        assert fig.problems == []
        assert fig.dropped_mid_stream == fig.follow_up_ok == fig.well_formed == n
        assert fig.reply_partial == fig.duplicated == 0
    run(sr.settle(server.pid, before))
    after = sr.proc_figures(server.pid)
    assert after["fds"] <= before["fds"] + FD_SLACK, (before, after)
    assert after["ESTABLISHED"] <= before["ESTABLISHED"], (before, after)
    assert after["CLOSE_WAIT"] == 0, after
    assert after["threads"] <= before["threads"], (before, after)
    assert server.tracebacks() == 0


def test_client_leaving_mid_request_body_is_not_an_error(server: Any) -> None:
    before = sr.proc_figures(server.pid)
    assert run(sr.half_bodies(server, 10)) == 10
    run(sr.settle(server.pid, before))
    after = sr.proc_figures(server.pid)
    assert after["fds"] <= before["fds"] + FD_SLACK, (before, after)
    assert after["CLOSE_WAIT"] == 0, after
    assert server.tracebacks() == 0, server.stderr.read_text()[-2000:]
    fig = run(sr.concurrent_streams(server, 5, TOKENS))  # and the server carries on
    assert fig.done == 5


def test_mid_stream_drops_leave_no_asyncio_task(tmp_path: Path) -> None:
    fig = run(sr.in_process_tasks(tmp_path / "tasks.db", 20, 20, 20, TOKENS))
    assert fig.drops.problems == []
    assert fig.drops.follow_up_ok == fig.drops.well_formed == 20
    assert fig.tasks_after <= fig.tasks_before
    assert (fig.turns_after, fig.busy_after) == (0, 0)


def test_kill_9_during_a_burst_loses_no_answered_message(tmp_path: Path) -> None:
    fig = run(sr.kill_burst(tmp_path, tmp_path / "kill.db", 8, 2, 0.6, TOKENS), timeout=90)
    assert fig.answered_posts > 0
    assert fig.created_in_burst > 0
    assert fig.lost_examples == []
    assert (fig.lost, fig.changed, fig.created_missing) == (0, 0, 0)
    assert fig.sessions_readable == 8


def test_restart_keeps_every_session(tmp_path: Path) -> None:
    fig = run(sr.restart_keeps_sessions(tmp_path, tmp_path / "restart.db", 30))
    assert fig.mismatches == []
    assert fig.get_200 == fig.same_fields == 30
