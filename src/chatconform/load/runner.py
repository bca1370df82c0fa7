"""Run Locust as a child process (``python -m locust -f … --headless``) and follow its progress.

A child process keeps gevent's monkey-patching out of the calling process (the CLI also runs
the embedded reference server and subprocess bookkeeping), makes ``--processes N`` (Locust's
own master + N forked workers) available unchanged, and means ``chatconform load`` runs exactly
what a Locust user would run by hand. Secrets reach it through the environment, never argv.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from chatconform.load.collect import DRAIN_SLACK_S, PROGRESS_PREFIX, SUMMARY_PREFIX
from chatconform.load.slo import render as slo_render
from chatconform.target import Target, target_environ

START_GRACE_S = 60.0  # start-up, worker connection and shutdown on top of the run time
WORKER_WAIT_S = 120.0  # a master waits this long for its --expect-workers; a worker for its master


@dataclass
class Plan:
    """Everything one Locust run needs."""

    locustfiles: list[Path]
    target: Target
    report_dir: Path
    users: int
    spawn_rate: float
    run_time: float
    endpoint: str
    rate: float = 0.0
    arrival: str = "constant"
    seed: int = 1
    turns: int = 3
    workers: int = 0
    gates: dict[str, float] = field(default_factory=dict)
    objectives: dict[str, float] = field(default_factory=dict)
    checks: bool = True
    warm_up: float = 0.0  # seconds: requests sent earlier stay out of latency and throughput
    role: str = (
        "local"  # local (one process, or --workers forked), master or worker (--master/--worker)
    )
    expect_workers: int = 0
    master_bind_host: str = "*"
    master_bind_port: int = 5557
    master_host: str = "127.0.0.1"
    master_port: int = 5557

    def command(self) -> list[str]:
        d = self.report_dir
        cmd = [sys.executable, "-m", "locust", "-f", ",".join(str(f) for f in self.locustfiles)]
        cmd += ["--headless", "--only-summary", "-u", str(self.users), "-r", f"{self.spawn_rate:g}"]
        cmd += ["-t", f"{max(round(self.run_time), 1)}s", "--host", self.target.base_url]
        cmd += ["--csv", str(d / "locust"), "--html", str(d / "locust.html")]
        log = "locust-worker.log" if self.role == "worker" else "locust.log"
        cmd += ["--logfile", str(d / log), "--loglevel", "INFO", "--stop-timeout", "0"]
        cmd += ["--exit-code-on-error", "0"]
        if self.role == "master":
            cmd += ["--master", "--expect-workers", str(self.expect_workers)]
            cmd += ["--expect-workers-max-wait", f"{WORKER_WAIT_S:g}"]
            cmd += ["--master-bind-host", self.master_bind_host]
            cmd += ["--master-bind-port", str(self.master_bind_port)]
        elif self.role == "worker":
            cmd += ["--worker", "--master-host", self.master_host]
            cmd += ["--master-port", str(self.master_port)]
        elif self.workers > 0:
            port = free_port()
            cmd += ["--processes", str(self.workers)]
            cmd += ["--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
            cmd += ["--master-host", "127.0.0.1", "--master-port", str(port)]
        lim = self.target.limits
        cmd += ["--cc-endpoint", self.endpoint, "--cc-report-dir", str(d)]
        cmd += ["--cc-turns", str(self.turns), "--cc-timeout", f"{lim.timeout:g}"]
        cmd += ["--cc-stream-timeout", f"{lim.stream_timeout:g}"]
        cmd += ["--cc-max-bytes", str(lim.max_body_bytes)]
        if self.rate > 0:
            cmd += ["--cc-rate", f"{self.rate:g}", "--cc-arrival", self.arrival]
            cmd += ["--cc-seed", str(self.seed)]
        for option, value in self.gates.items():
            cmd += ["--cc-" + option.replace("_", "-"), f"{value:g}"]
        if self.objectives:
            cmd += ["--cc-slo", slo_render(self.objectives)]
        if not self.checks:
            cmd += ["--cc-no-checks"]
        if self.warm_up > 0:
            cmd += ["--cc-warm-up", f"{self.warm_up:g}"]
        return cmd

    def environ(self) -> dict[str, str]:
        """The child's environment: the target as FLOWYTE_* variables (secrets stay off argv)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWYTE_", "LOCUST_"))}
        env.update(target_environ(self.target))
        env["PYTHONUNBUFFERED"] = "1"
        if self.target.embedded:
            env["CHATCONFORM_EMBEDDED_TARGET"] = "1"
        return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Progress:
    """One live line on a terminal (rewritten in place), or plain lines elsewhere."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._shown = False
        self._last = 0.0

    def show(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + text[:200])
            self.stream.flush()
            self._shown = True
        elif time.monotonic() - self._last >= 5.0:
            self._last = time.monotonic()
            print(text, file=self.stream, flush=True)

    def done(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()


def run_locust(plan: Plan, progress: Progress) -> tuple[int, str]:
    """Run Locust to the end (bounded); returns (exit code, the tail of its output)."""
    plan.report_dir.mkdir(parents=True, exist_ok=True)
    out_path = plan.report_dir / (
        "locust-worker-output.txt" if plan.role == "worker" else "locust-output.txt"
    )
    tail: list[str] = []
    with out_path.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            plan.command(),
            cwd=plan.report_dir,  # no stray locust.conf from the caller's directory
            env=plan.environ(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                line = line.rstrip("\n")
                if line.startswith(PROGRESS_PREFIX):
                    progress.show("load " + line[len(PROGRESS_PREFIX) :])
                elif not line.startswith(SUMMARY_PREFIX):
                    tail.append(line)
                    del tail[:-20]

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        # the run, then the requests in flight at its end (each within its stream deadline)
        limit = plan.run_time + plan.target.limits.stream_timeout + DRAIN_SLACK_S + START_GRACE_S
        if plan.role in ("master", "worker"):
            limit += WORKER_WAIT_S
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            tail.append(f"locust did not finish within {limit:g} s and was stopped")
            code = -1
        except BaseException:
            proc.terminate()
            proc.wait(timeout=15)
            raise
        reader.join(timeout=10)
    progress.done()
    return code, "\n".join(tail[-8:])
