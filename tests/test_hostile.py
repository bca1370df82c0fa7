"""Hostile targets: `chatconform run` ends in bounded time, names the reason, writes its summary,
exits 1, prints no traceback, and never sends the key to another host.

Documented bounds (README, "Bounds"): each exchange ends within --stream-timeout (headers included)
and each read within --timeout; after --max-consecutive timeouts (3) the target is taken as not
answering and later requests fail at once; the whole run stops sending at --run-timeout.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness import CliRun, chatconform, concurrently
from hostile_run import BOUND_S as DEFAULT_BOUND_S
from hostile_run import KINDS, KindRun, run_kind
from hostile_servers import hostile

# --strict: once the first stream has not ended, later exchanges are abandoned (ERROR), so the FAIL
# comes from what the first exchanges broke, which may be a contract decision (C)
# --timeout 2, not 1: the drip server sends a byte every second, and a 1 s read timeout would race
# it on a busy machine ("no byte for 1 s" instead of the deadline the drip mode is about)
LIMITS = [
    "--strict", "--timeout", "2", "--stream-timeout", "3", "--run-timeout", "45",
    "--max-body-mb", "4",
]  # fmt: skip
BOUND_S = 45 + 3 + 45  # run budget + one exchange + start-up and reporting slack (2 runs at once)

# mode -> a phrase that some finding must carry
REASONS = {
    "silent": "no byte for 2 s",
    "stall": "no byte for 2 s after event 2",
    "endless": "stream still open after 3 s",
    "drip": "outlived its 3 s deadline",
    "huge": "stream exceeded 4 MiB",
    "bad-utf8": "invalid UTF-8",
    "reset": "Connection reset by peer",
    "redirect": "HTTP 307",
}


def run_against(base_url: str, tmp_path: Path, key: str) -> tuple[object, float]:
    started = time.monotonic()
    run = chatconform(
        "run", "--base-url", base_url, "--agent-id", "agent-x", *LIMITS,
        report_dir=tmp_path, env={"FLOWYTE_API_KEY": key}, timeout=BOUND_S + 30,
    )  # fmt: skip
    return run, time.monotonic() - started


def survive(mode: str, tmp_path: Path) -> tuple[object, float, str, list[bytes]]:
    """One run against `mode`, whose redirects point at a recorder on another loopback host."""
    key = "flowyte_sk_test_CANARY" + mode.replace("-", "")
    with hostile("recorder", host="127.0.0.2") as elsewhere:
        with hostile(mode, redirect_to=elsewhere.base_url + "/chat/sessions") as server:
            run, elapsed = run_against(server.base_url, tmp_path / mode, key)
        return run, elapsed, key, list(elsewhere.requests)


def test_hostile_target_is_survived(tmp_path: Path, subtests: pytest.Subtests) -> None:
    """Every mode at once: the runs mostly wait on their bounds, so they share the wall time."""
    runs = concurrently(survive, sorted(REASONS), tmp_path, width=2)
    for mode, (run, elapsed, key, elsewhere) in runs.items():
        with subtests.test(mode=mode):
            assert elsewhere == []  # nothing, let alone the key, went to the other host
            output = run.stdout + run.stderr
            assert run.code == 1, output[-3000:]
            assert "Traceback" not in output
            assert elapsed < BOUND_S
            summary = run.summary
            assert summary["verdict"] == "FAIL"
            texts = [f["got"] for r in summary["rules"] for f in r["findings"]]
            assert any(REASONS[mode] in t for t in texts), texts[:10]
            for path in (tmp_path / mode).rglob("*"):
                if path.is_file():
                    assert key not in path.read_text(errors="replace"), path
            assert key not in output


def test_memory_stays_bounded_on_a_200mb_line(tmp_path: Path) -> None:
    with hostile("huge") as server:
        run, _ = run_against(server.base_url, tmp_path, "flowyte_sk_test_mem")
    assert run.code == 1
    assert 0 < run.peak_rss_mib < 300, (
        f"peak RSS of the run (a 200 MB line held would be more) {run.peak_rss_mib:.0f} MiB"
    )


def load_against(mode: str, tmp_path: Path) -> tuple[CliRun, float]:
    out = tmp_path / mode
    started = time.monotonic()
    with hostile(mode) as server:
        run = chatconform(
            "load", "--base-url", server.base_url, "--agent-id", "agent-x", "--profile", "smoke",
            "--run-time", "4s", "--timeout", "1", "--stream-timeout", "3",
            "--report-dir", str(out), report_dir=out,
            env={"FLOWYTE_API_KEY": "flowyte_sk_test_loadcanary"}, timeout=120,
        )  # fmt: skip
    return run, time.monotonic() - started


def test_load_against_a_hostile_target_ends_on_time(
    tmp_path: Path, subtests: pytest.Subtests
) -> None:
    """`chatconform load` counts what the target does as errors or incomplete, and stops."""
    runs = concurrently(load_against, ["silent", "stall", "endless", "drip", "huge"], tmp_path)
    for mode, (run, elapsed) in runs.items():
        with subtests.test(mode=mode):
            output = run.stdout + run.stderr
            assert run.code == 1, output[-3000:]
            assert "Traceback" not in output
            assert elapsed < 60
            summary = json.loads((tmp_path / mode / "load-summary.json").read_text())
            assert summary["verdict"] in ("FAIL", "INVALID")
            endpoints = summary["endpoints"].values()
            bad = sum(e["errors"] + e["incomplete"] for e in endpoints)
            good = sum(e["requests"] - e["errors"] - e["incomplete"] for e in endpoints)
            assert bad > 0
            assert good == 0


# -- issue 11: DEFAULT options, all suites, --strict: every hostile kind ends in under 120 s -------
#: Kinds run as a user runs them, no --concurrency at all (4 xdist workers): the two slowest at the
#: default concurrency before its workers shared what they learn (chatconform.health), each paying
#: the full stream deadline, and the stream proxy whose SSE-5 FAIL was lost when the first strike
#: fell in a test aiming at another rule (checks.unended). The others one at a time, like the other
#: self-tests: 4 workers cost start-up CPU (about 10 s a run) on 2 cores shared with the other
#: pytest worker. benchmarks/bench_hostile.py times every kind at the defaults.
AT_DEFAULT_CONCURRENCY = frozenset({"endless", "drip", "streams:endless"})


def test_default_options_end_every_hostile_kind_in_bounded_time(
    tmp_path: Path, subtests: pytest.Subtests
) -> None:
    """No shortened --timeout/--stream-timeout here: what a new user runs. Each run ends under the
    bound with exit 1; every rule it could not judge is ERROR or FAIL with a reason; behind a stream
    proxy (a correct server whose streams only are hostile) the rest is still judged, and the
    stream that did not end is a FAIL of the termination rule whichever worker met it first. The
    kinds run at the same time: each mostly waits on its bounds (benchmarks/bench_hostile.py times
    them one by one)."""

    def one(kind: str, d: Path) -> KindRun:
        default = kind in AT_DEFAULT_CONCURRENCY
        return run_kind(kind, d / kind.replace(":", "-"), default_concurrency=default)

    runs = concurrently(one, KINDS, tmp_path)
    for kind, k in runs.items():
        with subtests.test(kind=kind):
            output = k.run.stdout + k.run.stderr
            assert k.seconds < DEFAULT_BOUND_S, f"{kind}: {k.seconds:.0f} s\n{output[-2000:]}"
            assert k.run.code == 1, output[-3000:]
            assert "Traceback" not in output
            summary = k.run.summary
            assert summary["verdict"] == "FAIL"
            for r in summary["rules"]:
                if r["verdict"] in ("ERROR", "FAIL"):
                    assert r["reason"], r["id"]
            verdicts = {r["id"]: r["verdict"] for r in summary["rules"]}
            if kind.startswith("streams:"):
                # JSON answers are correct: the session and error rules are still judged and pass
                assert verdicts["SES-1"] == "PASS", verdicts
                assert verdicts["ERR-1"] == "PASS", verdicts
            if kind in ("streams:endless", "streams:drip"):
                # both termination rules, whichever stream struck first: not ERROR for all that
                # was abandoned after it
                assert verdicts["SSE-5"] == "FAIL", verdicts
                assert verdicts["OAI-4"] == "FAIL", verdicts
