"""Sweep to the knee: open-loop steps at rising rates, then a bisection to the highest good rate.

A step is one open-loop run (its own Locust run and report directory, ``step-NN-<rate>rps``). A
step is *good* when every endpoint's SLO attainment is at least the target and the run is valid
(the client kept its schedule and was not saturated): its figures can be trusted and they meet
the SLO. The sweep multiplies the rate by ``factor`` while steps are good, stops at the first bad
step (or the step limit), then bisects between the last good and the first bad rate. The knee is
the highest good rate. ``sweep.json`` has one row per step and the knee.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SWEEP_FILE = "sweep.json"


@dataclass(frozen=True, slots=True)
class SweepSpec:
    start_rps: float = 2.0
    factor: float = 2.0
    max_steps: int = 6  # rising steps
    bisections: int = 3
    step_s: float = 15.0
    target: float = 0.9  # least SLO attainment of a good step
    max_rps: float = 10_000.0


def row(rate: float, summary: dict[str, Any], report_dir: Path) -> dict[str, Any]:
    """One step's figures, from its load-summary.json."""
    eps = summary.get("endpoints") or {}
    attain = [ep["slo"]["attainment"] for ep in eps.values() if ep.get("slo")]
    goodput = sum(ep["slo"]["goodput_rps"] for ep in eps.values() if ep.get("slo"))
    achieved = sum(ep.get("requests_per_s") or 0.0 for ep in eps.values())
    client = summary.get("client") or {}
    lag = client.get("dispatch_lag_ms") or {}
    per_endpoint = {
        name: {
            metric: {k: (ep.get(metric) or {}).get(k) for k in ("p50", "p99")}
            for metric in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms")
        }
        | {
            "requests": ep.get("requests"),
            "errors": ep.get("errors"),
            "incomplete": ep.get("incomplete"),
            "violating": (ep.get("conformance") or {}).get("violating"),
        }
        for name, ep in eps.items()
    }
    return {
        "offered_rps": rate,
        "achieved_rps": round(achieved, 3),
        "dispatch_lag_ms": {"p50": lag.get("p50"), "p99": lag.get("p99")},
        "late_share": client.get("late_share"),
        "saturated": bool(client.get("saturated")),
        "verdict": summary.get("verdict"),
        "invalid_reasons": summary.get("invalid_reasons") or [],
        "attainment": min(attain) if attain else None,
        "goodput_rps": round(goodput, 3),
        "violations": sum((v.get("violating") or 0) for v in per_endpoint.values()),
        "endpoints": per_endpoint,
        "report_dir": report_dir.name,
    }


def good(step: dict[str, Any], target: float) -> tuple[bool, str]:
    if step["verdict"] == "INVALID" or step["saturated"]:
        why = "; ".join(step["invalid_reasons"]) or "the client was saturated"
        return False, f"not trusted: {why}"
    if step["attainment"] is None:
        return False, "nothing measured"
    if step["attainment"] < target:
        return False, f"attainment {step['attainment']:.1%} < {target:.0%}"
    return True, "ok"


def run_sweep(
    spec: SweepSpec, step: Callable[[float, Path], dict[str, Any]], report_dir: Path
) -> dict[str, Any]:
    """Run the sweep; ``step(rate, dir)`` runs one open-loop step and returns its summary."""
    rows: list[dict[str, Any]] = []

    def measure(rate: float) -> bool:
        d = report_dir / f"step-{len(rows) + 1:02d}-{rate:g}rps"
        r = row(rate, step(rate, d), d)
        r["good"], r["why"] = good(r, spec.target)
        rows.append(r)
        write(report_dir, spec, rows, None, "running")
        return bool(r["good"])

    best: float | None = None
    worst: float | None = None
    rate = spec.start_rps
    stopped_by = f"step limit ({spec.max_steps} rising steps)"
    for _ in range(spec.max_steps):
        if measure(rate):
            best = rate
            rate = min(rate * spec.factor, spec.max_rps)
            if best >= spec.max_rps:
                stopped_by = f"the --max-rate {spec.max_rps:g}"
                break
        else:
            worst = rate
            stopped_by = rows[-1]["why"]
            break
    if best is not None and worst is not None:
        lo, hi = best, worst
        for _ in range(spec.bisections):
            mid = round((lo + hi) / 2, 3)
            if mid in (lo, hi):
                break
            if measure(mid):
                lo = mid
            else:
                hi = mid
        best = lo
    knee = None
    if best is not None:
        at = next(r for r in rows if r["good"] and r["offered_rps"] == best)
        knee = {
            "offered_rps": best,
            "attainment": at["attainment"],
            "goodput_rps": at["goodput_rps"],
        }
    return write(report_dir, spec, rows, knee, stopped_by)


def write(
    report_dir: Path,
    spec: SweepSpec,
    rows: list[dict[str, Any]],
    knee: dict[str, Any] | None,
    stopped_by: str,
) -> dict[str, Any]:
    out = {
        "target_attainment": spec.target,
        "start_rps": spec.start_rps,
        "factor": spec.factor,
        "step_s": spec.step_s,
        "steps": rows,
        "knee": knee,
        "stopped_by": stopped_by,
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / SWEEP_FILE).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return out


def lines(result: dict[str, Any]) -> list[str]:
    out = [
        f"{'offered':>8} {'achieved':>8} {'lag p99':>8} {'TTFT p50':>9} {'p99':>9} "
        f"{'attain':>7} {'goodput':>8} {'viol':>5}  step"
    ]
    for r in result["steps"]:
        ttft = [ep["ttft_ms"] for ep in r["endpoints"].values()]
        p50 = max((t["p50"] or 0 for t in ttft), default=0)
        p99 = max((t["p99"] or 0 for t in ttft), default=0)
        lag = r["dispatch_lag_ms"].get("p99")
        attain = "-" if r["attainment"] is None else f"{r['attainment']:.1%}"
        out.append(
            f"{r['offered_rps']:>8g} {r['achieved_rps']:>8.2f} "
            f"{'-' if lag is None else f'{lag:.1f}':>8} {p50:>9.1f} {p99:>9.1f} {attain:>7} "
            f"{r['goodput_rps']:>8.2f} {r['violations']:>5}  {'good' if r['good'] else r['why']}"
        )
    knee = result["knee"]
    if knee:
        out.append(
            f"knee: {knee['offered_rps']:g} req/s offered (attainment {knee['attainment']:.1%}, "
            f"goodput {knee['goodput_rps']:.2f} req/s); stopped by {result['stopped_by']}"
        )
    else:
        out.append(f"no knee: no step met the SLO ({result['stopped_by']})")
    return out
