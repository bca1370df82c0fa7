"""`chatconform load --master` and `--worker` as separate processes over TCP on loopback.

The merged summary must hold exactly the samples the workers say they sent, and a worker must
refuse a master of another chatconform version with one clear line (exit 2).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatconform.embedded import EmbeddedServer
from chatconform.load.handshake import IDENTITY_ENV
from chatconform.target import Target

TIMEOUT_S = 150


@pytest.fixture(scope="module")
def reference() -> Iterator[Target]:
    with EmbeddedServer(["--ttft-ms", "10", "--itl-ms", "3", "--tokens", "4"]) as target:
        yield target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(target: Target, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWYTE_", "LOCUST_"))}
    env.pop("CHATCONFORM_REFERENCE_ARGS", None)
    return env | {
        "FLOWYTE_BASE_URL": target.base_url,
        "FLOWYTE_API_KEY": target.api_key or "",
        "FLOWYTE_AGENT_ID": target.agent_id or "",
    } | extra  # fmt: skip


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "chatconform.load", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
    return proc.returncode, out, err


def test_master_and_two_workers_merge_exactly_the_workers_samples(
    reference: Target, tmp_path: Path
) -> None:
    port = str(free_port())
    env = env_for(reference)
    # one command line for every role: the same target and run options, plus the role
    common = ["--endpoint", "completions", "--users", "4", "--run-time", "4s"]
    master = start(
        [*common, "--master", "--expect-workers", "2", "--master-bind-host", "127.0.0.1",
         "--master-bind-port", port, "--report-dir", str(tmp_path / "master")],
        env,
    )  # fmt: skip
    worker_args = [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", port]
    workers = [
        start([*worker_args, "--report-dir", str(tmp_path / f"worker{n}")], env) for n in range(2)
    ]
    code, out, err = finish(master)
    results = [finish(w) for w in workers]
    assert code in (0, 1), out[-2000:] + err[-2000:]
    sent: dict[int, int] = {}
    for wcode, wout, werr in results:
        assert wcode == 0, wout[-2000:] + werr[-2000:]
        match = re.search(r"worker (\d+) sent (\d+) samples", wout)
        assert match, wout[-2000:]
        sent[int(match.group(1))] = int(match.group(2))
    assert sorted(sent) == [0, 1]
    summary = json.loads((tmp_path / "master" / "load-summary.json").read_text())
    samples = [
        json.loads(line)
        for line in (tmp_path / "master" / "requests.jsonl").read_text().splitlines()
    ]
    assert Counter(s["worker"] for s in samples) == Counter(sent)  # per worker, exactly
    assert summary["samples"] == sum(sent.values()) > 0
    ep = summary["endpoints"]["completions"]
    assert ep["requests"] == sum(1 for s in samples if s["outcome"] != "dropped")
    assert summary["settings"]["distributed"]["workers_lost"] == []
    roles = sorted(p["role"] for p in summary["client"]["processes"])
    assert roles == ["master", "worker", "worker"]


def test_a_worker_refuses_a_master_of_another_version(reference: Target, tmp_path: Path) -> None:
    port = str(free_port())
    common = ["--endpoint", "completions", "--users", "1", "--run-time", "3s"]
    master = start(
        [*common, "--master", "--expect-workers", "1", "--master-bind-host", "127.0.0.1",
         "--master-bind-port", port, "--report-dir", str(tmp_path / "master")],
        env_for(reference),
    )  # fmt: skip
    worker = start(
        [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", port,
         "--report-dir", str(tmp_path / "worker")],
        env_for(reference, **{IDENTITY_ENV: "0.0.0-other"}),
    )  # fmt: skip
    wcode, wout, werr = finish(worker)
    code, out, _ = finish(master)
    assert wcode == 2, wout[-2000:] + werr[-2000:]
    lines = werr.strip().splitlines()
    assert len(lines) == 1
    assert "refuses the master" in lines[0]
    assert "install the same version on both" in lines[0]
    assert "Traceback" not in werr
    summary = json.loads((tmp_path / "master" / "load-summary.json").read_text())
    assert summary["settings"]["distributed"]["refused"]
    assert code == 1, out[-2000:]  # nothing was measured
