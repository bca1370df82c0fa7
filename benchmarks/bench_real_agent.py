"""A strict run against an agent that behaves like a real one: wall time, agent calls, rules judged.

Run: ``python benchmarks/bench_real_agent.py [--concurrency 1 default] [--ttft-ms 1500 --itl-ms 30
--tokens 100] [--max-agent-calls N] [--seed S]`` ("default": no --concurrency, run's own default).

It starts ``chatconform serve`` with those latency knobs (each reply: TTFT plus tokens x ITL, about
4.5 s with the defaults, as issue 15 measured), then for each concurrency runs
``chatconform run --strict`` against it with otherwise default options and prints one row: wall time,
the agent calls and tokens the summary reports, the requests the cap refused, and the rules judged
(every verdict but SKIP) with the SKIPs named. It takes minutes; the machine's load average is
printed with the table, since wall times on a shared machine depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SERVE_START_S = 60.0
RUN_LIMIT_S = 1800.0


def chatconform() -> list[str]:
    return [sys.executable, "-m", "chatconform.cli"]


def start_server(args: argparse.Namespace, workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    creds = workdir / "target.json"
    cmd = [*chatconform(), "serve", "--port", "0", "--credentials-out", str(creds)]
    cmd += ["--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms)]
    cmd += ["--tokens", str(args.tokens)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + SERVE_START_S
    while time.monotonic() < deadline:
        if creds.exists() and creds.stat().st_size > 0:
            try:
                json.loads(creds.read_text(encoding="utf-8"))
                return proc, creds
            except ValueError:
                pass
        if proc.poll() is not None:
            raise SystemExit(f"chatconform serve exited with {proc.returncode}")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"chatconform serve did not write {creds} in {SERVE_START_S:g} s")


def one_run(args: argparse.Namespace, creds: Path, concurrency: str, out: Path) -> dict[str, Any]:
    cmd = [*chatconform(), "run", "--strict", "--target-file", str(creds)]
    if concurrency != "default":
        cmd += ["--concurrency", concurrency]
    cmd += ["--report-dir", str(out)]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    if args.max_agent_calls is not None:
        cmd += ["--max-agent-calls", args.max_agent_calls]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, timeout=RUN_LIMIT_S, check=False)
    seconds = time.monotonic() - started
    summary_path = out / "summary.json"
    if not summary_path.exists():
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise SystemExit(f"run at concurrency {concurrency} wrote no summary: {' '.join(tail)}")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    rules = summary["rules"]
    skipped = {r["id"]: r["reason"] for r in rules if r["verdict"] == "SKIP"}
    agent = summary.get("agent") or {}
    return {
        "concurrency": concurrency,
        "exit": done.returncode,
        "seconds": round(seconds, 1),
        "verdict": summary["verdict"],
        "counts": summary["counts"],
        "judged": len(rules) - len(skipped),
        "rules": len(rules),
        "skipped": skipped,
        "agentCalls": agent.get("calls"),
        "maxAgentCalls": agent.get("maxCalls"),
        "tokens": agent.get("tokens"),
        "refused": agent.get("refused"),
        "verdicts": {r["id"]: r["verdict"] for r in rules},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--concurrency", nargs="+", default=["1", "default"],
        help="the concurrencies to compare: counts, or 'default' (run's own)",
    )  # fmt: skip
    p.add_argument("--ttft-ms", type=int, default=1500)
    p.add_argument("--itl-ms", type=int, default=30)
    p.add_argument("--tokens", type=int, default=100)
    p.add_argument("--max-agent-calls", default=None, help="passed to run (default: run's own)")
    p.add_argument("--seed", type=int, default=None, help="the fuzz seed (default: run's own)")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    args = p.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-real-agent-") as tmp:
        workdir = Path(tmp)
        proc, creds = start_server(args, workdir)
        try:
            for n in args.concurrency:
                load = os.getloadavg()
                row = one_run(args, creds, n, workdir / f"run-c{n}")
                row["loadavgBefore"] = [round(x, 2) for x in load]
                row["loadavgAfter"] = [round(x, 2) for x in os.getloadavg()]
                rows.append(row)
                print(
                    f"concurrency {n}: {row['seconds']} s, agent calls {row['agentCalls']} "
                    f"(cap {row['maxAgentCalls']}, {row['refused']} refused), tokens "
                    f"{row['tokens']}, rules judged {row['judged']}/{row['rules']}, "
                    f"{row['verdict']} {row['counts']}, loadavg {row['loadavgBefore'][0]} -> "
                    f"{row['loadavgAfter'][0]}",
                    flush=True,
                )
                for rid, why in row["skipped"].items():
                    print(f"    SKIP {rid}: {why[:150]}", flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"\nslow agent: TTFT {args.ttft_ms} ms, ITL {args.itl_ms} ms, {args.tokens} tokens")
    print(
        "| concurrency | wall time (s) | agent calls | tokens | refused | rules judged | "
        "verdicts | loadavg (1 min, before -> after) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        counts = ", ".join(f"{n} {v}" for v, n in r["counts"].items() if n)
        print(
            f"| {r['concurrency']} | {r['seconds']} | {r['agentCalls']} of {r['maxAgentCalls']} "
            f"| {r['tokens']} | {r['refused']} | {r['judged']}/{r['rules']} | {counts} | "
            f"{r['loadavgBefore'][0]} -> {r['loadavgAfter'][0]} |"
        )
    if len(rows) > 1:
        base = rows[0]["verdicts"]
        differ = [
            f"{rid} {base[rid]}->{r['verdicts'][rid]} (c{r['concurrency']})"
            for r in rows[1:]
            for rid in base
            if r["verdicts"].get(rid) != base[rid]
        ]
        print(
            "verdicts differ: " + ", ".join(differ)
            if differ
            else "same verdicts at every concurrency"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
