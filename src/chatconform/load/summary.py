"""load-summary.json: the verdict, per-endpoint figures, thresholds and the client's health.

Verdicts: PASS; FAIL when a threshold is broken or no request completed; INVALID when the
figures cannot be trusted: open loop with more than 1 % of requests sent over 10 ms late, or
a latency threshold broken while the client itself was saturated (then the client, not the
server, may be what was slow). A broken conformance gate (``--max-violation-rate``) is FAIL
whatever the client's health: a stream that breaks a rule does so at any speed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatconform.load import thresholds as th
from chatconform.load.health import merge as merge_health
from chatconform.load.metrics import DEFINITIONS, LATENCIES, RunMetrics

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
        reasons.append(reason(r, endpoints[r["endpoint"]]))
    late = client["late_share"]
    if late is not None and late > MAX_LATE_SHARE:
        invalid.append(
            f"{late:.1%} of requests were sent more than {RunMetrics.LATE_MS:g} ms late "
            f"(> {MAX_LATE_SHARE:.0%}): the client could not keep the schedule"
        )
    timing = [r for r in broken if not r["name"].startswith("conformance")]
    if timing and client["saturated"]:
        invalid.append(
            "a threshold broke while the client was saturated: "
            + "; ".join(client["saturation_reasons"])
        )
    conformance_broken = len(timing) < len(broken)
    if invalid and not conformance_broken:
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


def rules_text(conf: dict[str, Any]) -> str:
    """ "SSE-5 on 12 of 240 checked streams (5.00%), MSG-5 on 1 (0.42%)"."""
    checked = conf["checked"] or 1
    parts = []
    for n, (rule, count) in enumerate(sorted(conf["by_rule"].items(), key=lambda kv: -kv[1])):
        share = f"{count / checked:.2%}"
        if n == 0:
            parts.append(f"{rule} on {count} of {conf['checked']} checked streams ({share})")
        else:
            parts.append(f"{rule} on {count} ({share})")
    return ", ".join(parts)


def reason(result: dict[str, Any], endpoint: dict[str, Any]) -> str:
    """Why one threshold broke, in words (the rule and share for conformance)."""
    head = f"{result['endpoint']} {result['name']} {result['value']}"
    head += f" < {result['limit']:g}" if result.get("at_least") else f" > {result['limit']:g}"
    if result["name"] == "conformance.violation_rate" and result["value"]:
        conf = endpoint["conformance"]
        text = f"{head}: {rules_text(conf)}"
        example = conf.get("example")
        if example:
            text += (
                f"; e.g. request {example['request_id']}: {example['rule']} {example['message']}"
            )
        return text
    if result.get("reason"):
        head += f" ({result['reason']})"
    return head


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
            f"{ep['incomplete']} incomplete, {ep.get('censored', 0)} censored; "
            f"{ep['requests_per_s']:.2f} req/s, {ep['tokens_per_s']:.1f} tokens/s "
            f"(tokens from {ep.get('token_source') or '-'})"
        )
        conf = ep.get("conformance")
        if conf:
            text = (
                f"  conformance: {conf['checked']} streams checked, {conf['violating']} violating "
                f"({conf['violation_rate']:.2%})"
            )
            if conf["by_rule"]:
                text += ": " + rules_text(conf)
            out.append(text)
            if conf.get("example"):
                ex = conf["example"]
                out.append(f"  e.g. request {ex['request_id']}: {ex['rule']} {ex['message']}")
        if ep.get("warm_up_requests"):
            out.append(
                f"  warm-up: {ep['warm_up_requests']} requests sent in the first "
                f"{summary['settings'].get('warm_up_s') or 0:g} s: checked and counted, not in "
                "latency, throughput or SLO figures"
            )
        slo = ep.get("slo")
        if slo:
            out.append(
                f"  slo {','.join(f'{k}={v:g}' for k, v in slo['objectives'].items())}: "
                f"{slo['attained']} of {slo['requests']} attained ({slo['attainment']:.2%}), "
                f"goodput {slo['goodput_rps']:.2f} req/s (itl_ms = worst gap per request)"
            )
        cens = ep.get("censored_elapsed_ms") or {}
        if cens.get("count"):
            out.append(
                f"  censored: {cens['count']} in flight at the end, elapsed max {cens['max']} ms"
            )
        out.append(
            f"  {'metric':8} {'count':>7} {'mean':>9} {'p50':>9} {'p90':>9} {'p95':>9} "
            f"{'p99':>9} {'p99.9':>9} {'max':>9}  definition"
        )
        for metric in LATENCIES:
            d = ep.get(metric)
            if d is None:
                continue
            cells = " ".join(
                f"{_fmt(d[k]):>9}" for k in ("mean", "p50", "p90", "p95", "p99", "p99.9", "max")
            )
            out.append(f"  {metric:8} {d['count']:>7} {cells}  {summary['definitions'][metric]}")
    c = summary["client"]
    client = f"client: cpu {c['cpu_percent']}%, loop lag p99 {c['loop_lag_p99_ms']} ms"
    if c.get("read_lag_p99_ms") is not None:
        client += f", read lag p99 {c['read_lag_p99_ms']} ms"
    if c.get("checked_events"):
        client += (
            f", checks {c['check_cpu_s']} s for {c['checked_events']} events "
            f"({c['check_us_per_event']} µs/event)"
        )
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
        bound = "at least" if r.get("at_least") else "limit"
        out.append(
            f"threshold {mark} {r['endpoint']} {r['name']} = {r['value']} ({bound} {r['limit']:g})"
        )
    for why in summary["reasons"]:
        out.append(f"FAIL: {why}")
    for why in summary["invalid_reasons"]:
        out.append(f"INVALID: {why}")
    return out
