"""Every shipped load profile honours --run-time (the spike's spike happens inside it)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatconform.embedded import EmbeddedServer
from chatconform.load import profiles
from chatconform.target import Target

RUN_S = 3
SPIKE_RUN_S = 8  # Locust ticks a shape once a second: the spike (a fifth of the run) needs > 1 s
STREAM_TIMEOUT_S = 5
# start-up (Locust, the workers' imports) + the end-of-run drain (stream timeout + 2 s) + slack
BOUND_S = RUN_S + STREAM_TIMEOUT_S + 2 + 40


@pytest.fixture(scope="module")
def reference() -> Iterator[Target]:
    with EmbeddedServer(["--ttft-ms", "5", "--itl-ms", "2", "--tokens", "4"]) as target:
        yield target


@pytest.mark.parametrize("name", profiles.available())
def test_profile_honours_run_time(name: str, reference: Target, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWYTE_", "LOCUST_"))}
    env |= {
        "FLOWYTE_API_KEY": reference.api_key or "",
        "FLOWYTE_AGENT_ID": reference.agent_id or "",
    }
    run_s = SPIKE_RUN_S if name == "spike" else RUN_S
    cmd = [
        sys.executable, "-m", "chatconform.load", "--profile", name,
        "--base-url", reference.base_url, "--run-time", f"{run_s}s", "--users", "2",
        "--stream-timeout", str(STREAM_TIMEOUT_S), "--report-dir", str(tmp_path),
    ]  # fmt: skip
    profile = profiles.load(name)
    if profile.rate:
        cmd += ["--rate", "4"]
    if profile.sweep:  # one step of --run-time (test_load_sweep runs whole sweeps)
        cmd += ["--slo", "ttft_ms=5000", "--sweep-steps", "1"]
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=BOUND_S + 30)
    elapsed = time.monotonic() - started - (run_s - RUN_S)
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-2000:]
    assert elapsed < BOUND_S, f"{name}: {elapsed:.1f} s over a {run_s} s run"
    if profile.sweep:
        sweep = json.loads((tmp_path / "sweep.json").read_text())
        assert len(sweep["steps"]) == 1
        tmp_path = tmp_path / sweep["steps"][0]["report_dir"]
    summary = json.loads((tmp_path / "load-summary.json").read_text())
    assert summary["settings"]["run_time_s"] == run_s
    requests = sum(ep["requests"] for ep in summary["endpoints"].values())
    assert requests > 0
    if name == "spike":  # 2 users, 10 from 40 % to 60 % of the run, then 2 again
        with (tmp_path / "locust_stats_history.csv").open() as fh:
            counts = [int(row["User Count"]) for row in csv.DictReader(fh)]
        assert max(counts) == 10, counts
