"""``python -m chatconform.load`` end to end against the reference: files, merge, exit codes."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatconform.embedded import EmbeddedServer
from chatconform.target import Target

TTFT_MS, ITL_MS, TOKENS = 30, 5, 8


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWYTE_", "LOCUST_"))}
    env.pop("CHATCONFORM_REFERENCE_ARGS", None)
    return env | extra


def load(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatconform.load", *args],
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def reference() -> Iterator[Target]:
    args = ["--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS), "--tokens", str(TOKENS)]
    with EmbeddedServer(args) as target:
        yield target


def test_smoke_profile_against_the_embedded_reference(tmp_path: Path) -> None:
    proc = load(
        [
            "--profile",
            "smoke",
            "--run-time",
            "4s",
            "--report-dir",
            str(tmp_path),
            "--ref-ttft-ms",
            str(TTFT_MS),
            "--ref-itl-ms",
            str(ITL_MS),
            "--ref-tokens",
            str(TOKENS),
            "--max-error-rate",
            "0.5",
        ]
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("load-summary.json", "requests.jsonl", "locust_stats.csv", "locust.html"):
        assert (tmp_path / name).is_file(), name
    summary = json.loads((tmp_path / "load-summary.json").read_text())
    assert summary["verdict"] == "PASS"
    assert set(summary["endpoints"]) == {"sessions", "completions"}
    for ep in summary["endpoints"].values():
        assert ep["requests"] > 0
        assert ep["ttft_ms"]["p50"] >= TTFT_MS  # measured includes the injected delay
        assert ep["itl_ms"]["count"] == ep["ok"] * (TOKENS - 1)  # every gap, pooled
        assert ep["e2e_ms"]["p50"] >= TTFT_MS + (TOKENS - 1) * ITL_MS
        assert ep["tokens_per_s"] > 0
        assert {"p50", "p90", "p95", "p99", "max"} <= set(ep["ttft_ms"])
    assert summary["client"]["cpu_percent"] is not None
    assert summary["thresholds"][0]["name"] == "error_rate"
    # Locust's own stats show TTFT and E2E per endpoint
    with (tmp_path / "locust_stats.csv").open() as fh:
        names = {row["Name"] for row in csv.DictReader(fh)}
    assert {"sessions TTFT", "sessions E2E", "completions TTFT", "completions E2E"} <= names
    # per-request JSONL: one object per line; no secret anywhere in the report
    first = json.loads((tmp_path / "requests.jsonl").read_text().splitlines()[0])
    assert {"endpoint", "outcome", "sent_ms", "content_ms", "terminal_ms"} <= set(first)
    for f in tmp_path.iterdir():
        assert "flowyte_sk_" not in f.read_text(errors="replace"), f.name
    assert "verdict PASS" in proc.stdout


def test_two_workers_merge_and_a_broken_threshold_exits_1(
    reference: Target, tmp_path: Path
) -> None:
    env = _env(FLOWYTE_API_KEY=reference.api_key or "", FLOWYTE_AGENT_ID=reference.agent_id or "")
    proc = load(
        [
            "--base-url",
            reference.base_url,
            "--endpoint",
            "completions",
            "--users",
            "4",
            "--run-time",
            "4s",
            "--workers",
            "2",
            "--report-dir",
            str(tmp_path),
            "--max-ttft-p95-ms",
            "1",
            "--warm-up",
            "1s",
        ],
        env,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "load-summary.json").read_text())
    # INVALID when the (shared, busy) machine also left the client saturated: still exit 1
    assert summary["verdict"] in ("FAIL", "INVALID")
    assert summary["settings"]["workers"] == 2
    broken = [t for t in summary["thresholds"] if not t["passed"]]
    assert broken
    assert broken[0]["name"] == "ttft_ms.p95"
    assert broken[0]["value"] >= TTFT_MS
    samples = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert {s["worker"] for s in samples} == {0, 1}  # raw samples of both workers merged
    assert summary["samples"] == len(samples)
    ok = sum(1 for s in samples if s["outcome"] == "ok")
    assert summary["endpoints"]["completions"]["ok"] == ok
    # --warm-up 1s, in each worker: its first second's requests counted, not measured
    assert summary["settings"]["warm_up_s"] == 1
    warm = [s for s in samples if s.get("warmup")]
    assert {s["worker"] for s in warm} == {0, 1}
    assert summary["endpoints"]["completions"]["warm_up_requests"] == len(warm)
    measured_ok = sum(1 for s in samples if s["outcome"] == "ok" and not s.get("warmup"))
    assert 0 < measured_ok < ok
    assert summary["endpoints"]["completions"]["ttft_ms"]["count"] == measured_ok
    assert "warm-up: " in proc.stdout
    roles = sorted(p["role"] for p in summary["client"]["processes"])
    assert roles == ["master", "worker", "worker"]
    assert reference.api_key not in (tmp_path / "requests.jsonl").read_text()


def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    proc = load(["--profile", "no-such-profile", "--report-dir", str(tmp_path)])
    assert proc.returncode == 2
    assert "unknown profile" in proc.stderr
    assert "Traceback" not in proc.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    proc = load(
        [
            "--base-url",
            f"http://127.0.0.1:{port}/api/v1",
            "--api-key",
            "flowyte_sk_test_x",
            "--agent-id",
            "a",
            "--timeout",
            "2",
            "--report-dir",
            str(tmp_path),
        ]
    )
    assert proc.returncode == 2
    assert "cannot reach the target" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = load(["--run-time", "soon"])
    assert proc.returncode == 2
    proc = load(["--run-time", "5s", "--warm-up", "5s", "--report-dir", str(tmp_path)])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--warm-up 5 s leaves nothing of the 5 s run to measure" in lines[0]
