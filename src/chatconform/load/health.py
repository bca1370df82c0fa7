"""The load generator's own health: CPU use and event-loop (gevent hub) lag, per process.

A probe greenlet sleeps 10 ms again and again and records how late it wakes up: when the hub
is busy parsing streams that lateness is added to every timestamp the users take, so a run
whose client was saturated is flagged instead of reported as a slow server.
"""

from __future__ import annotations

import os
import time
from typing import Any

from hdrh.histogram import HdrHistogram

PROBE_S = 0.010
CPU_SATURATED = 90.0  # percent of one core, mean over the run
LAG_SATURATED_MS = 10.0  # p99 of the probe's lateness


def _hist() -> HdrHistogram:
    return HdrHistogram(1, 60_000_000, 3)  # µs, up to 60 s


class HealthMonitor:
    """Start with start() inside a gevent process; report() gives a mergeable snapshot."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.lag = _hist()
        self.read_lag = _hist()  # per request: how late the client read its bytes (load.h1)
        self._greenlet: Any = None
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()
        self._cpu1: float | None = None
        self._wall1: float | None = None

    def start(self) -> None:
        import gevent

        self.restart()
        self._cpu1 = self._wall1 = None
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._probe)

    def restart(self) -> None:
        """Forget what was measured so far (before the start, or the warm-up): lags and CPU
        count from now on."""
        self.lag = _hist()
        self.read_lag = _hist()
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()

    def _probe(self) -> None:
        import gevent

        while True:
            t0 = time.perf_counter_ns()
            gevent.sleep(PROBE_S)
            late_us = (time.perf_counter_ns() - t0) // 1000 - int(PROBE_S * 1e6)
            self.lag.record_value(min(max(late_us, 0), 60_000_000))

    def add_read_lag(self, lag_ns: int | None) -> None:
        """One request's largest read lag: its bytes arrived (kernel stamp), then waited this long
        to be read. The arrival stamps leave it out of TTFT and ITL, unless a read merged
        deltas that arrived apart (then they share the later one's time)."""
        if lag_ns is not None:
            self.read_lag.record_value(min(max(lag_ns // 1000, 1), 60_000_000))

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        self._cpu1 = time.process_time()
        self._wall1 = time.perf_counter()

    def cpu_percent(self) -> float:
        cpu = (self._cpu1 if self._cpu1 is not None else time.process_time()) - self._cpu0
        wall = (self._wall1 if self._wall1 is not None else time.perf_counter()) - self._wall0
        return round(100.0 * cpu / wall, 1) if wall > 0 else 0.0

    def report(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "pid": os.getpid(),
            "cpu_percent": self.cpu_percent(),
            "loop_lag_p99_ms": lag_p99(self.lag),
            "lag_hist": self.lag.encode().decode("ascii"),
            "read_lag_p99_ms": lag_p99(self.read_lag),
            "read_lag_hist": self.read_lag.encode().decode("ascii"),
        }


def lag_p99(hist: HdrHistogram) -> float | None:
    if not hist.get_total_count():
        return None
    return round(hist.get_value_at_percentile(99.0) / 1000.0, 3)


def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The client's health over all load processes: the worst process's CPU, pooled lag p99."""
    pooled = _hist()
    read_lag = _hist()
    processes = []
    for r in reports:
        if r.get("lag_hist"):
            pooled.add(HdrHistogram.decode(r["lag_hist"].encode("ascii")))
        if r.get("read_lag_hist"):
            read_lag.add(HdrHistogram.decode(r["read_lag_hist"].encode("ascii")))
        processes.append({k: v for k, v in r.items() if k not in ("lag_hist", "read_lag_hist")})
    load = [p for p in processes if p["role"] != "master"] or processes
    cpu = max((p["cpu_percent"] for p in load), default=None)
    lag = lag_p99(pooled)
    reasons = []
    if cpu is not None and cpu >= CPU_SATURATED:
        reasons.append(f"a load process used {cpu:g}% of a core (>= {CPU_SATURATED:g}%)")
    if lag is not None and lag > LAG_SATURATED_MS:
        reasons.append(f"event-loop lag p99 {lag:g} ms (> {LAG_SATURATED_MS:g} ms)")
    inline = sum(int(p.get("settled_inline") or 0) for p in processes)
    if inline:
        reasons.append(
            f"{inline} finished streams were checked and recorded at once, between reads: the "
            "client never went idle long enough for them to wait (see chatconform.load.settle)"
        )
    backlog = max((int(p.get("settle_backlog_max") or 0) for p in processes), default=0)
    check_s = sum(float(p.get("check_seconds") or 0.0) for p in processes)
    check_events = sum(int(p.get("checked_events") or 0) for p in processes)
    return {
        "cpu_percent": cpu,
        "loop_lag_p99_ms": lag,
        # per request, the largest delay between bytes arriving and the client reading them
        "read_lag_p99_ms": lag_p99(read_lag),
        "check_cpu_s": round(check_s, 3),  # time spent in the conformance checks, all processes
        "checked_events": check_events,
        "check_us_per_event": round(check_s * 1e6 / check_events, 2) if check_events else None,
        # streams read whose checks and sample waited for an idle moment: the most at once
        "settle_backlog_max": backlog,
        "settled_inline": inline,
        "saturated": bool(reasons),
        "saturation_reasons": reasons,
        "processes": processes,
    }
