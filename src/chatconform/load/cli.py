"""``chatconform load``: run a load profile against a target (or the embedded reference), gate it.

Exit codes: 0 every threshold held; 1 a threshold broke, nothing completed, or the run is
INVALID (the client could not keep its schedule, or was saturated when a threshold broke);
2 usage error or unreachable target (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatconform.load import profiles
from chatconform.load import slo as slo_mod
from chatconform.load.openloop import ARRIVALS
from chatconform.load.summary import SUMMARY_FILE, exit_code, lines
from chatconform.load.thresholds import GATES, HELP
from chatconform.paths import shown, user_path, user_paths
from chatconform.preflight import TargetUnusable, check_target
from chatconform.target import (
    TARGET_FIELDS,
    Limits,
    Target,
    TargetError,
    add_target_arguments,
    resolve_target,
)

if TYPE_CHECKING:
    from chatconform.load.runner import Plan

EXIT_USAGE = 2
DEFAULT_USERS = 10
DEFAULT_RUN_TIME_S = 30.0
REF_TTFT_MS, REF_ITL_MS, REF_TOKENS = 50, 10, 16


class UsageError(Exception):
    """Exit 2 with this message."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _timespan(text: str) -> float:
    try:
        return profiles.parse_timespan(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``chatconform load`` (also ``python -m chatconform.load``)."""
    g = add_target_arguments(parser)
    g.add_argument(
        "--timeout", type=_non_negative, default=10.0, help="seconds per connect/read (10)"
    )
    g.add_argument(
        "--stream-timeout",
        type=_non_negative,
        default=30.0,
        help="seconds per stream, start to close (30)",
    )

    load = parser.add_argument_group("load")
    load.add_argument(
        "--endpoint",
        choices=("sessions", "completions", "both"),
        default=None,
        help="what to load (default: the profile's, else both)",
    )
    load.add_argument(
        "--profile",
        default=None,
        help="a profile in loadtests/profiles: " + ", ".join(profiles.available()),
    )
    load.add_argument(
        "--users",
        type=_positive_int,
        default=None,
        help=f"concurrent users, closed loop (default: the profile's, else {DEFAULT_USERS})",
    )
    load.add_argument(
        "--spawn-rate",
        type=_non_negative,
        default=None,
        help="users started per second (default: all at once)",
    )
    load.add_argument(
        "--rate",
        type=_non_negative,
        default=None,
        help="open loop: requests per second on an absolute schedule",
    )
    load.add_argument(
        "--arrival", choices=ARRIVALS, default=None, help="open-loop arrivals (default constant)"
    )
    load.add_argument("--seed", type=int, default=1, help="seed of Poisson arrivals (1)")
    load.add_argument(
        "--turns", type=_positive_int, default=3, help="streamed messages per session (3)"
    )
    load.add_argument(
        "--run-time",
        type=_timespan,
        default=None,
        help="e.g. 30s, 2m (default: the profile's, else 30s)",
    )
    load.add_argument(
        "--workers",
        type=_positive_int,
        default=0,
        help="Locust worker processes under a master (0: one local process)",
    )
    load.add_argument("--report-dir", default=None, help="where to write (reports/<timestamp>/)")

    sweep = parser.add_argument_group("sweep to the knee (--profile sweep; needs --slo)")
    sweep.add_argument(
        "--sweep-start", type=_non_negative, default=None, metavar="RPS",
        help="the first step's rate (default: --rate, the profile's, else 2)",
    )  # fmt: skip
    sweep.add_argument(
        "--sweep-factor", type=_non_negative, default=2.0, metavar="F",
        help="each rising step's rate is the last one's times F (2)",
    )  # fmt: skip
    sweep.add_argument(
        "--sweep-steps", type=_positive_int, default=6, metavar="N", help="rising steps at most (6)"
    )
    sweep.add_argument(
        "--sweep-bisections", type=_positive_int, default=3, metavar="N",
        help="bisection steps between the last good and the first bad rate (3)",
    )  # fmt: skip
    sweep.add_argument(
        "--max-rate", type=_non_negative, default=10_000.0, metavar="RPS",
        help="never offer more than this",
    )  # fmt: skip
    sweep.add_argument(
        "--min-knee-rps", type=_non_negative, default=None, metavar="X",
        help="threshold: the knee (highest rate meeting the SLO) at least X req/s",
    )  # fmt: skip

    dist = parser.add_argument_group(
        "distributed (Locust master and workers on several hosts; see docs/distributed.md)"
    )
    dist.add_argument(
        "--master", action="store_true", help="run the master: it merges the workers' samples"
    )
    dist.add_argument(
        "--expect-workers", type=_positive_int, default=None, metavar="N",
        help="master: start once N workers are connected (waits up to 120 s)",
    )  # fmt: skip
    dist.add_argument("--master-bind-host", default="*", metavar="H", help="master: bind (*)")
    dist.add_argument(
        "--master-bind-port", type=_positive_int, default=5557, metavar="P",
        help="master: port (5557)",
    )  # fmt: skip
    dist.add_argument(
        "--worker", action="store_true",
        help="run a worker: it loads the target and sends its raw samples to the master",
    )  # fmt: skip
    dist.add_argument("--master-host", default="127.0.0.1", metavar="H", help="worker: master")
    dist.add_argument(
        "--master-port", type=_positive_int, default=5557, metavar="P", help="worker: (5557)"
    )

    load.add_argument(
        "--slo",
        default=None,
        metavar="OBJECTIVES",
        help="per-request objectives for SLO attainment and goodput, e.g. "
        "ttft_ms=250,itl_ms=50,tpot_ms=30,e2e_ms=2000 (itl_ms limits a request's worst gap)",
    )
    load.add_argument(
        "--warm-up",
        type=_timespan,
        default=0.0,
        metavar="DURATION",
        help="requests sent in the run's first DURATION (e.g. 2s) are left out of latency, "
        "throughput and SLO figures: the start-up transient (connections opened, every stream "
        "starting at once). They are still checked and counted as requests, errors and "
        "conformance (default 0: none left out)",
    )
    load.add_argument(
        "--no-checks",
        action="store_true",
        help="do not judge streams with the conformance checks (calibration of the client only)",
    )

    gates = parser.add_argument_group("thresholds (exit 1 when broken)")
    for option, (metric, stat) in GATES.items():
        gates.add_argument(
            "--" + option.replace("_", "-"),
            type=_non_negative,
            default=None,
            metavar="X",
            help=HELP.get(option, f"limit on {metric} {stat}") + ", per endpoint",
        )

    ref = parser.add_argument_group("embedded reference (when no target is given)")
    ref.add_argument(
        "--ref-ttft-ms",
        type=_positive_int,
        default=REF_TTFT_MS,
        help=f"its time to first token ({REF_TTFT_MS})",
    )
    ref.add_argument(
        "--ref-itl-ms",
        type=_positive_int,
        default=REF_ITL_MS,
        help=f"its delay between deltas ({REF_ITL_MS})",
    )
    ref.add_argument(
        "--ref-tokens",
        type=_positive_int,
        default=REF_TOKENS,
        help=f"its deltas per reply ({REF_TOKENS})",
    )


def reference_args(args: argparse.Namespace) -> list[str]:
    """Knobs for the embedded reference, with any rate limiter switched off."""
    from chatconform.embedded import reference_args_from_env
    from chatconform.reference.cli import add_arguments as ref_add_arguments

    out = ["--ttft-ms", str(args.ref_ttft_ms), "--itl-ms", str(args.ref_itl_ms)]
    out += ["--tokens", str(args.ref_tokens)]
    probe = argparse.ArgumentParser(add_help=False)
    ref_add_arguments(probe)
    flags = {s for a in probe._actions for s in a.option_strings}
    if "--rate-limit-rps" in flags:
        out += ["--rate-limit-rps", "0"]
    return out + reference_args_from_env()


def preflight(target: Target, endpoint: str) -> None:
    """The run's bounded preflight (chatconform.preflight), plus what a load test needs."""
    if not target.agent_id:
        raise UsageError("no agent id: give --agent-id or FLOWYTE_AGENT_ID")
    try:
        check_target(target, endpoint in ("sessions", "both"), endpoint in ("completions", "both"))
    except TargetUnusable as exc:
        raise UsageError(str(exc)) from None


def _plan_values(args: argparse.Namespace) -> dict[str, object]:
    try:
        profile = profiles.load(args.profile)
    except profiles.ProfileError as exc:
        raise UsageError(str(exc)) from None
    rate = args.rate if args.rate is not None else (profile.rate or 0.0)
    if args.users is not None and args.users < 1:
        raise UsageError("--users must be at least 1")
    users = args.users or profile.users or DEFAULT_USERS
    if rate > 0:
        users = max(args.workers, args.expect_workers or 0, 1)  # one driver per process
    spawn_rate = args.spawn_rate or profile.spawn_rate or float(users)
    try:
        objectives = slo_mod.parse(args.slo) if args.slo is not None else dict(profile.slo)
    except slo_mod.SLOError as exc:
        raise UsageError(str(exc)) from None
    gates = dict(profile.gates)
    gates.update({o: getattr(args, o) for o in GATES if getattr(args, o) is not None})
    needs_slo = [o for o in ("min_slo_attainment", "min_goodput_rps") if o in gates]
    if needs_slo and not objectives:
        raise UsageError(f"--{needs_slo[0].replace('_', '-')} needs --slo objectives")
    if "min_slo_attainment" in gates and gates["min_slo_attainment"] > 1:
        raise UsageError("--min-slo-attainment is a share between 0 and 1")
    run_time = args.run_time or profile.run_time or DEFAULT_RUN_TIME_S
    if args.warm_up and args.warm_up >= run_time:
        raise UsageError(
            f"--warm-up {args.warm_up:g} s leaves nothing of the {run_time:g} s run to measure: "
            "make it shorter than --run-time"
        )
    return {
        "objectives": objectives,
        "gates": gates,
        "profile": profile,
        "locustfiles": list(profile.locustfiles),
        "users": users,
        "spawn_rate": spawn_rate if spawn_rate > 0 else float(users),
        "run_time": run_time,
        "endpoint": args.endpoint or profile.endpoint or "both",
        "rate": rate,
        "arrival": args.arrival or profile.arrival or "constant",
    }


def run(args: argparse.Namespace) -> int:
    """Run ``chatconform load``; returns the exit code (prints one line on a usage error)."""
    try:
        return _run(args)
    except UsageError as exc:
        print(f"chatconform load: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("chatconform load: interrupted", file=sys.stderr, flush=True)
        return 130


def _role(args: argparse.Namespace) -> str:
    if args.master and args.worker:
        raise UsageError("--master and --worker exclude each other")
    if (args.master or args.worker) and args.workers:
        raise UsageError("--workers forks local workers; with --master/--worker leave it out")
    if args.master:
        if not args.expect_workers:
            raise UsageError("--master needs --expect-workers N")
        return "master"
    if args.expect_workers and not args.worker:
        raise UsageError("--expect-workers goes with --master")
    return "worker" if args.worker else "local"


def _run(args: argparse.Namespace) -> int:
    from chatconform.embedded import EmbeddedError, EmbeddedServer
    from chatconform.load.runner import Plan, Progress, run_locust

    user_paths(args)  # --report-dir, --target-file: before Locust starts in the report directory
    role = _role(args)
    values = _plan_values(args)
    if args.timeout <= 0 or args.stream_timeout <= 0:
        raise UsageError("--timeout and --stream-timeout must be > 0")
    report_dir = Path(
        args.report_dir or user_path(Path("reports") / time.strftime("%Y%m%d-%H%M%S"))
    )
    limits = Limits(timeout=args.timeout, stream_timeout=args.stream_timeout)
    explicit = {a: getattr(args, a) for a in TARGET_FIELDS}
    server: EmbeddedServer | None = None
    try:
        target = resolve_target(explicit, args.target_file, limits)
        if target is None and role == "worker":
            raise UsageError(
                "a worker needs the target: give the master's --base-url (or FLOWYTE_BASE_URL)"
            )
        if target is None:
            server = EmbeddedServer(reference_args(args), limits)
            target = server.start()
            print(
                f"chatconform load: no --base-url given; started the reference at "
                f"{target.base_url} (ttft {args.ref_ttft_ms} ms, itl {args.ref_itl_ms} ms, "
                f"{args.ref_tokens} tokens)",
                flush=True,
            )
        if role != "worker":  # the master checked the target; workers start at its signal
            preflight(target, values["endpoint"])  # type: ignore[arg-type]
        plan = Plan(
            locustfiles=values["locustfiles"],  # type: ignore[arg-type]
            target=target,
            report_dir=report_dir.resolve(),
            users=values["users"],  # type: ignore[arg-type]
            spawn_rate=values["spawn_rate"],  # type: ignore[arg-type]
            run_time=values["run_time"],  # type: ignore[arg-type]
            endpoint=values["endpoint"],  # type: ignore[arg-type]
            rate=values["rate"],  # type: ignore[arg-type]
            arrival=values["arrival"],  # type: ignore[arg-type]
            seed=args.seed,
            turns=max(args.turns, 1),
            workers=args.workers,
            gates=values["gates"],  # type: ignore[arg-type]
            objectives=values["objectives"],  # type: ignore[arg-type]
            checks=not args.no_checks,
            warm_up=args.warm_up,
            role=role,
            expect_workers=args.expect_workers or 0,
            master_bind_host=args.master_bind_host,
            master_bind_port=args.master_bind_port,
            master_host=args.master_host,
            master_port=args.master_port,
        )
        mode = (
            f"open loop {plan.rate:g} req/s {plan.arrival}" if plan.rate else f"{plan.users} users"
        )
        if role == "worker":
            print(
                f"chatconform load: worker of the master at {plan.master_host}:"
                f"{plan.master_port} (the master's settings apply) -> {shown(plan.report_dir)}",
                flush=True,
            )
        else:
            processes = (
                f"{plan.expect_workers} workers expected on port {plan.master_bind_port}"
                if role == "master"
                else f"{plan.workers or 'no'} worker processes"
            )
            print(
                f"chatconform load: profile {values['profile'].name}, {plan.endpoint}, {mode}, "  # type: ignore[attr-defined]
                f"{plan.run_time:g} s, {processes} -> {shown(plan.report_dir)}",
                flush=True,
            )
        if values["profile"].sweep:  # type: ignore[attr-defined]
            if role != "local":
                raise UsageError("a sweep runs on one host (--workers N for several processes)")
            return _sweep(args, values, plan)
        code, tail = run_locust(plan, Progress(sys.stderr))
    except (TargetError, EmbeddedError) as exc:
        raise UsageError(str(exc)) from None
    finally:
        if server is not None:
            server.stop()
    if role == "worker":
        return _worker_result(plan.report_dir, code, tail)
    summary_path = plan.report_dir / SUMMARY_FILE
    if not summary_path.exists():
        last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
        raise UsageError(f"the load run did not finish (locust exit {code}): {last}")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    from chatconform.report import write_run_reports

    write_run_reports(plan.report_dir)  # summary.html/md with the latency plots
    for line in lines(summary):
        print(line)
    print(f"reports: {shown(plan.report_dir)}")
    return exit_code(summary)


def _sweep(args: argparse.Namespace, values: dict[str, object], base: Plan) -> int:
    """Open-loop steps at rising rates, then a bisection to the knee (chatconform.load.sweep)."""
    import dataclasses

    from chatconform.load import sweep as sweep_mod
    from chatconform.load.runner import Progress, run_locust
    from chatconform.report.sweep import write as write_sweep_html

    objectives = values["objectives"]
    if not objectives:
        raise UsageError("a sweep needs --slo objectives (e.g. --slo ttft_ms=300)")
    gates = dict(values["gates"])  # type: ignore[call-overload]
    target = gates.pop("min_slo_attainment", 0.9)
    start = args.sweep_start or args.rate or values["rate"] or 2.0
    if not start or start <= 0:
        raise UsageError("--sweep-start must be > 0")
    spec = sweep_mod.SweepSpec(
        start_rps=float(start),  # type: ignore[arg-type]
        factor=max(args.sweep_factor, 1.1),
        max_steps=max(args.sweep_steps, 1),
        bisections=args.sweep_bisections,
        step_s=base.run_time,
        target=float(target),
        max_rps=args.max_rate,
    )
    print(
        f"chatconform load: sweep from {spec.start_rps:g} req/s (x{spec.factor:g}, "
        f"{spec.step_s:g} s a step), SLO {values['objectives']}, good at attainment >= "
        f"{spec.target:.0%} -> {shown(base.report_dir)}",
        flush=True,
    )

    def step(rate: float, report_dir: Path) -> dict[str, Any]:
        users = max(base.workers, 1)
        plan = dataclasses.replace(
            base, rate=rate, report_dir=report_dir, users=users, spawn_rate=float(users),
            gates=gates,
        )  # fmt: skip
        code, tail = run_locust(plan, Progress(sys.stderr))
        path = report_dir / SUMMARY_FILE
        if not path.exists():
            last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
            raise UsageError(f"a sweep step did not finish (locust exit {code}): {last}")
        summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        att = [ep["slo"]["attainment"] for ep in summary["endpoints"].values() if ep.get("slo")]
        print(
            f"  step {rate:g} req/s: attainment {min(att) if att else float('nan'):.1%}, "
            f"verdict {summary['verdict']}",
            flush=True,
        )
        return summary

    result = sweep_mod.run_sweep(spec, step, base.report_dir)
    write_sweep_html(base.report_dir, result)
    for line in sweep_mod.lines(result):
        print(line)
    print(f"reports: {shown(base.report_dir)}")
    knee = result["knee"]
    if args.min_knee_rps is not None:
        value = knee["offered_rps"] if knee else 0.0
        if value < args.min_knee_rps:
            print(f"FAIL: knee {value:g} req/s < --min-knee-rps {args.min_knee_rps:g}")
            return 1
    return 0 if knee else 1


def _worker_result(report_dir: Path, code: int, tail: str) -> int:
    """A worker writes no summary (its master does): say what it sent, or why it refused."""
    from chatconform.load.collect import SUMMARY_PREFIX

    out = report_dir / "locust-worker-output.txt"
    lines_ = out.read_text(encoding="utf-8", errors="replace").splitlines() if out.exists() else []
    ours = [ln[len(SUMMARY_PREFIX) :] for ln in lines_ if ln.startswith(SUMMARY_PREFIX)]
    refused = [ln for ln in ours if ln.startswith("refused: ")]
    if refused:
        raise UsageError(refused[0][len("refused: ") :])
    for line in ours:
        print(line)
    if code != 0:
        last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
        raise UsageError(f"the worker did not finish (locust exit {code}): {last}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatconform load",
        description="Load-test a Flowyte Chat API target with exact streaming latency figures.",
    )
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
