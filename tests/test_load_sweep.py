"""`chatconform load --profile sweep`: the bisection to the knee, and a sweep of a capped server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatconform.load.sweep import SweepSpec, good, run_sweep
from test_load_stream import CAPPED_S, CAPPED_SLOTS, KEY, ScriptServer, _clean_env

CAPACITY_RPS = CAPPED_SLOTS / CAPPED_S  # 8 req/s


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptServer]:
    with ScriptServer() as s:
        yield s


def fake_summary(attainment: float, verdict: str = "PASS") -> dict[str, object]:
    ep = {
        "requests_per_s": 1.0,
        "slo": {"attainment": attainment, "goodput_rps": attainment},
        "ttft_ms": {"p50": 1.0, "p99": 2.0},
        "conformance": {"violating": 0},
    }
    return {"verdict": verdict, "endpoints": {"completions": ep}, "client": {}}


def test_bisection_finds_the_highest_good_rate(tmp_path: Path) -> None:
    """Attainment falls past 10 req/s: rising steps 2, 4, 8, 16; bisection 12, 10, 11."""
    spec = SweepSpec(start_rps=2, factor=2, max_steps=6, bisections=3, target=0.9)
    result = run_sweep(spec, lambda r, d: fake_summary(1.0 if r <= 10 else 0.5), tmp_path)
    assert [s["offered_rps"] for s in result["steps"]] == [2, 4, 8, 16, 12, 10, 11]
    assert result["knee"]["offered_rps"] == 10
    assert json.loads((tmp_path / "sweep.json").read_text())["knee"]["offered_rps"] == 10


def test_an_untrusted_step_is_never_good(tmp_path: Path) -> None:
    row = {"verdict": "INVALID", "saturated": True, "invalid_reasons": ["late"], "attainment": 1.0}
    assert good(row, 0.9) == (False, "not trusted: late")
    spec = SweepSpec(start_rps=2, factor=2, max_steps=6, bisections=3, target=0.9)
    result = run_sweep(
        spec, lambda r, d: fake_summary(1.0, "INVALID" if r > 4 else "PASS"), tmp_path
    )
    assert result["knee"]["offered_rps"] < 8  # never a rate whose figures cannot be trusted


def test_sweep_of_a_capped_server(server: ScriptServer, tmp_path: Path) -> None:
    """Against 8 req/s of capacity: steps at 2, 4, ... until one fails, a knee below 16 req/s
    (or, on a machine too busy to keep an open-loop schedule, a sweep that says it stopped
    because its figures could not be trusted), sweep.json, summary.html with its two plots."""
    env = _clean_env() | {"FLOWYTE_API_KEY": KEY, "FLOWYTE_AGENT_ID": "a"}
    cmd = [
        sys.executable, "-m", "chatconform.load", "--profile", "sweep",
        "--base-url", f"http://127.0.0.1:{server.port}/capped", "--slo", "ttft_ms=600",
        "--run-time", "3s", "--sweep-start", "2", "--sweep-steps", "4", "--sweep-bisections", "1",
        "--stream-timeout", "8", "--min-knee-rps", "1000", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # knee < 1000 req/s
    result = json.loads((tmp_path / "sweep.json").read_text())
    offered = [s["offered_rps"] for s in result["steps"]]
    assert offered[0] == 2
    assert any(not s["good"] for s in result["steps"])  # it stopped at a bad step
    if result["knee"] is not None:
        assert "FAIL: knee" in proc.stdout
        assert 2 <= result["knee"]["offered_rps"] < 2 * CAPACITY_RPS
    else:
        assert result["stopped_by"].startswith("not trusted"), result["stopped_by"]
    for s in result["steps"]:
        assert {
            "achieved_rps",
            "dispatch_lag_ms",
            "attainment",
            "goodput_rps",
            "violations",
        } <= set(s)
        assert (tmp_path / s["report_dir"] / "load-summary.json").is_file()
    html = (tmp_path / "summary.html").read_text()
    assert 'id="sweep-steps"' in html
    assert html.count("data:image/png;base64,") == 2
