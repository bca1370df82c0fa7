"""Wall time of `chatconform run --strict` (all suites, DEFAULT options) per hostile kind.

Default options means the default concurrency too: no --concurrency, so 4 pytest-xdist workers
against these remote (loopback) targets, each learning the target's stream health with the others.

Kinds: a server hostile in every answer (never answers, hangs before headers, hangs mid-stream,
streams forever, a byte a second, a 200 MB frame, invalid UTF-8, reset mid-frame) and a correct
reference whose streams only are hostile (`streams:<mode>`). Prints one row per kind: seconds, exit
code, verdict counts, the first FAIL reason (else the first ERROR's), the run's CPU seconds and the
1-minute load average when it ended. Issue 11's bound: every kind under 120 s.

Run: ``python benchmarks/bench_hostile.py [KIND ...]``. Not a test: figures depend on the machine
(report them with the load average).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hostile_run import BOUND_S, KINDS, run_kind


def first_reason(summary: dict) -> str:  # type: ignore[type-arg]
    for verdict in ("FAIL", "ERROR"):
        for r in summary["rules"]:
            if r["verdict"] == verdict:
                return f"{r['id']} {r['verdict']}: {r['reason']}"[:110]
    return ""


def load1() -> str:
    with open("/proc/loadavg") as fh:
        return fh.read().split()[0]


def main(argv: list[str]) -> int:
    kinds = argv or list(KINDS)
    with open("/proc/loadavg") as fh:
        print(f"load average at start: {fh.read().split()[:3]}")
    print(
        f"{'kind':18} {'s':>6} {'exit':>4} {'cpu':>5} {'load':>5}  PASS FAIL ERR SKIP  first FAIL"
    )
    worst = 0.0
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix="bench-hostile-") as d:
            k = run_kind(kind, Path(d))
            try:
                s = k.run.summary
                c = s["counts"]
                row = f"{c['PASS']:4} {c['FAIL']:4} {c['ERROR']:3} {c['SKIP']:4}  {first_reason(s)}"
            except (OSError, ValueError, KeyError):
                row = "no summary: " + (k.run.stderr.strip().splitlines() or ["?"])[-1][:100]
        worst = max(worst, k.seconds)
        print(
            f"{kind:18} {k.seconds:6.1f} {k.run.code:4} {k.run.cpu_s:5.1f} {load1():>5}  {row}",
            flush=True,
        )
    with open("/proc/loadavg") as fh:
        print(
            f"load average at end: {fh.read().split()[:3]}; slowest {worst:.1f} s (bound {BOUND_S:g} s)"
        )
    return 0 if worst < BOUND_S else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
