"""load-summary.json: the verdict, per-endpoint figures, thresholds and the client's health.

Verdicts: PASS; FAIL when a threshold is broken or no request completed; INVALID when the
figures cannot be trusted: open loop with more than 1 % of requests sent over 10 ms late, or
a broken threshold while the client itself was saturated (then the client, not the server,
may be what was slow).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatconform.load import thresholds as th
from chatconform.load.health import merge as merge_health
from chatconform.load.metrics import DEFINITIONS, RunMetrics

SUMMARY_FILE = "load-summary.json"
SAMPLES_FILE = "requests.jsonl"
MAX_LATE_SHARE = 0.01


def build(
    metrics: RunMetrics,
    health_reports: list[dict[str, Any]],
    gates: list[th.Threshold],
    settings: dict[str, Any],
) -> dict[str, Any]:
    endpoints = {name: m.summary() for name, m in sorted(metrics.endpoints.items())}
    results = th.evaluate(gates, endpoints)
    client = merge_health(health_reports)
    open_loop = bool(settings.get("rate"))
    client["late_share"] = metrics.late_share if open_loop else None
    client["late_ms"] = RunMetrics.LATE_MS
    client["dispatch_lag_ms"] = metrics.dispatch.summary() if open_loop else None
    client["scheduled"] = metrics.scheduled if open_loop else None

    reasons: list[str] = []
    invalid: list[str] = []
    if not any(e["ok"] for e in endpoints.values()):
        reasons.append("no request completed")
    broken = [r for r in results if not r["passed"]]
    for r in broken:
        reasons.append(f"{r['endpoint']} {r['name']} {r['value']} > {r['limit']:g}")
    late = client["late_share"]
    if late is not None and late > MAX_LATE_SHARE:
        invalid.append(
            f"{late:.1%} of requests were sent more than {RunMetrics.LATE_MS:g} ms late "
            f"(> {MAX_LATE_SHARE:.0%}): the client could not keep the schedule"
        )
    if broken and client["saturated"]:
        invalid.append(
            "a threshold broke while the client was saturated: "
            + "; ".join(client["saturation_reasons"])
        )
    if invalid:
        verdict = "INVALID"
    elif reasons:
        verdict = "FAIL"
    else:
        verdict = "PASS"
    return {
        "verdict": verdict,
        "reasons": reasons,
        "invalid_reasons": invalid,
        "mode": "open-loop" if open_loop else "closed-loop",
        "settings": settings,
        "endpoints": endpoints,
        "thresholds": results,
        "client": client,
        "definitions": DEFINITIONS,
    }


def write(report_dir: Path, summary: dict[str, Any]) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / SUMMARY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def exit_code(summary: dict[str, Any]) -> int:
    return 0 if summary.get("verdict") == "PASS" else 1


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def lines(summary: dict[str, Any]) -> list[str]:
    """A plain-text rendering: per endpoint, each metric with its percentiles and formula."""
    out: list[str] = []
    mode = summary["mode"]
    out.append(f"verdict {summary['verdict']} ({mode})")
    for name, ep in summary["endpoints"].items():
        out.append(
            f"{name}: {ep['requests']} requests, {ep['ok']} ok, {ep['errors']} errors, "
            f"{ep['incomplete']} incomplete; {ep['requests_per_s']:.2f} req/s, "
            f"{ep['tokens_per_s']:.1f} tokens/s"
        )
        out.append(
            f"  {'metric':8} {'count':>7} {'mean':>9} {'p50':>9} {'p90':>9} {'p95':>9} "
            f"{'p99':>9} {'p99.9':>9} {'max':>9}  definition"
        )
        for metric in ("ttfb_ms", "ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
            d = ep[metric]
            cells = " ".join(
                f"{_fmt(d[k]):>9}" for k in ("mean", "p50", "p90", "p95", "p99", "p99.9", "max")
            )
            out.append(f"  {metric:8} {d['count']:>7} {cells}  {summary['definitions'][metric]}")
    c = summary["client"]
    client = f"client: cpu {c['cpu_percent']}%, loop lag p99 {c['loop_lag_p99_ms']} ms"
    if c.get("late_share") is not None:
        lag = c["dispatch_lag_ms"] or {}
        client += (
            f", dispatch lag p99 {lag.get('p99')} ms, late share {c['late_share']:.2%}"
            f" of {c['scheduled']} arrivals"
        )
    if c["saturated"]:
        client += " -- SATURATED: " + "; ".join(c["saturation_reasons"])
    out.append(client)
    for r in summary["thresholds"]:
        mark = "ok  " if r["passed"] else "FAIL"
        out.append(
            f"threshold {mark} {r['endpoint']} {r['name']} = {r['value']} (limit {r['limit']:g})"
        )
    for reason in summary["invalid_reasons"]:
        out.append(f"INVALID: {reason}")
    return out
