"""Helpers for the self-tests: run the chatconform CLI as a user would, against a reference server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from chatconform.embedded import EmbeddedServer

CLI_TIMEOUT_S = 240


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
    report_dir: Path
    peak_rss_mib: float = 0.0  # the child's own peak (with its waited-for children), from wait4
    cpu_s: float = 0.0  # its CPU time, user + system, children included

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.report_dir / "summary.json").read_text(encoding="utf-8"))

    def verdicts(self) -> dict[str, str]:
        return {r["id"]: r["verdict"] for r in self.summary["rules"]}

    def failed(self) -> set[str]:
        return {rid for rid, v in self.verdicts().items() if v == "FAIL"}


def chatconform(
    *args: str,
    report_dir: Path,
    env: dict[str, str] | None = None,
    timeout: float = CLI_TIMEOUT_S,
    cwd: Path | None = None,
    default_concurrency: bool = False,
) -> CliRun:
    """`chatconform ARGS` in a child process (in `cwd`, default ours); `report_dir` is where its
    summary is read from (passed as --report-dir to `run` unless ARGS give one).
    `default_concurrency`: leave --concurrency to the command's default (what a user gets: 4 xdist
    workers for a remote target) instead of the self-tests' 1."""
    cmd = [sys.executable, "-m", "chatconform.cli", *args]
    if "--report-dir" not in args and args and args[0] == "run":
        cmd += ["--report-dir", str(report_dir)]
    ours = not default_concurrency and "--concurrency" not in args
    if args and args[0] in ("run", "verify") and ours:
        # the self-tests already keep both cores busy (pytest -n 2): a run of their own in 4 xdist
        # workers only adds start-up CPU against a fast reference. The default (4) is exercised
        # by the README walk-through and tests/test_agent_budget.py.
        cmd += ["--concurrency", "1"]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYTE_")}
    full_env.update(env or {})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            cmd, stdout=out, stderr=err, env=full_env, stdin=subprocess.DEVNULL, cwd=cwd,
        )  # fmt: skip
        # wait4, not wait: its rusage is this child's own, where RUSAGE_CHILDREN would be the
        # largest of every child this pytest worker ever had (a browser, a load run ...)
        killer = threading.Timer(timeout, child.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            killer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        if killer.finished.is_set() and child.returncode < 0:
            raise subprocess.TimeoutExpired(cmd, timeout)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", errors="replace")
        stderr = err.read().decode("utf-8", errors="replace")
    cpu_s = usage.ru_utime + usage.ru_stime
    return CliRun(child.returncode, stdout, stderr, report_dir, usage.ru_maxrss / 1024, cpu_s)


@contextmanager
def reference(*args: str) -> Iterator[EmbeddedServer]:
    """A reference server started with `args`; yields it (its .credentials is the target file)."""
    server = EmbeddedServer(list(args))
    server.start()
    try:
        yield server
    finally:
        server.stop()


K = TypeVar("K")
R = TypeVar("R")


def concurrently(
    job: Callable[[K, Path], R], keys: Iterable[K], tmp_path: Path, width: int = 3
) -> dict[K, R]:
    """`job(key, tmp_path)` for every key, `width` at a time (threads; the work is in child
    processes that mostly wait on timeouts, and each still needs some CPU of its own on a 2-core
    machine that the other pytest worker shares), results in the keys' order. The first exception of
    a job is raised after all have ended, so no child outlives the test."""
    keys = list(keys)
    with ThreadPoolExecutor(max_workers=max(1, min(width, len(keys)))) as pool:
        futures = {k: pool.submit(job, k, tmp_path) for k in keys}
    return {k: f.result() for k, f in futures.items()}
