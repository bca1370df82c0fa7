"""`chatconform run`: the conformance suites against one target, then the reports."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from chatconform import interrupt
from chatconform.agentcalls import parse_cap
from chatconform.cli import DEFAULT_CONCURRENCY, SUITES
from chatconform.errors import EXIT_ERROR, EXIT_FAIL, EXIT_OK, UsageError
from chatconform.paths import shown, user_path, user_paths
from chatconform.preflight import TargetUnusable, check_target
from chatconform.rules import RULES
from chatconform.target import (
    TARGET_FIELDS,
    Limits,
    Target,
    TargetError,
    resolve_target,
    target_options,
)

# pytest plugins installed alongside chatconform that the suites do not use (the fuzz suite drives
# Schemathesis and Hypothesis as libraries): not loading them saves ~4 s of CPU per run. xdist is
# kept when --concurrency asks for workers.
UNUSED_PLUGINS = (
    "schemathesis",
    "hypothesispytest",
    "locust",
    "anyio",
    "xdist",
    "xdist.looponfail",
)


def _families(selected: list[str] | None) -> list[str]:
    if not selected:
        return list(SUITES)
    names = [n for s in selected for n in s.split(",") if n]
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise UsageError(f"unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}")
    return names


def _expectation_args(args: argparse.Namespace) -> list[str]:
    """--expectations FILE (read now: a bad file is a usage error before any request is sent)."""
    out: list[str] = []
    path = getattr(args, "expectations", None)
    if path:
        from chatconform.expectations import load as load_expectations

        load_expectations(path)
        out += ["--expectations", str(Path(path).resolve())]
    if getattr(args, "strict_expectations", False):
        out.append("--strict-expectations")
    return out


def _confirm_args(args: argparse.Namespace) -> list[str]:
    """--confirm N (re-runs of a failing test) and --flaky fail|warn, checked before any request."""
    confirm = getattr(args, "confirm", 1)
    confirm = 1 if confirm is None else confirm
    if isinstance(confirm, bool) or not isinstance(confirm, int) or confirm < 0:
        raise UsageError(f"--confirm must be a whole number, 0 or more (got {confirm!r})")
    out = ["--confirm", str(confirm)]
    flaky = getattr(args, "flaky", None)
    if flaky is not None:
        if flaky not in ("fail", "warn"):
            raise UsageError(f"--flaky must be 'fail' or 'warn' (got {flaky!r})")
        out += ["--flaky", flaky]
    return out


def run_command(args: argparse.Namespace) -> int:
    from chatconform.embedded import EmbeddedError, EmbeddedServer, reference_args_from_env

    user_paths(args)  # --report-dir, --target-file: against the user's directory, before anything
    families = _families(args.suite)
    expectation_args = _expectation_args(args)
    expectation_args += _confirm_args(args)
    for name in ("timeout", "stream_timeout", "run_timeout"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive number of seconds")
    if args.max_body_mb <= 0:
        raise UsageError("--max-body-mb must be a positive number")
    xdist = importlib.util.find_spec("xdist") is not None
    chosen = args.concurrency
    if args.concurrency is None:  # the default: one at a time where pytest-xdist is missing
        args.concurrency = DEFAULT_CONCURRENCY if xdist else 1
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if args.concurrency > 1 and not xdist:
        raise UsageError("--concurrency above 1 needs pytest-xdist (pip install pytest-xdist)")
    cap = _agent_cap(args.max_agent_calls)
    if args.sdk is not None:
        from chatconform.sdk import parse_languages

        try:
            parse_languages(args.sdk)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    limits = Limits(
        args.timeout,
        args.stream_timeout,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        run_timeout=args.run_timeout,
    )
    report_dir = Path(
        args.report_dir or user_path(Path("reports") / time.strftime("%Y%m%d-%H%M%S"))
    )
    explicit = {a: getattr(args, a) for a in TARGET_FIELDS}
    server: EmbeddedServer | None = None
    started = time.monotonic()
    try:
        target = resolve_target(explicit, args.target_file, limits)
        if target is None:
            server = EmbeddedServer(reference_args_from_env(), limits)
            target = server.start()
            print(f"chatconform: no --base-url given; started the reference at {target.base_url}")
            if chosen is None:
                # the embedded reference answers in milliseconds: workers would only add start-up
                # CPU (measured: 55 s at 4 vs 32 s at 1 on 2 cores); --concurrency N overrides
                args.concurrency = 1
        sessions = bool(set(families) - {"completions"})
        check_target(target, sessions, "completions" in families or "fuzz" in families)
        extra = list(expectation_args)
        if args.seed is not None:
            extra += ["--fuzz-seed", str(args.seed)]
        if args.max_examples is not None:
            extra += ["--fuzz-max-examples", str(args.max_examples)]
        extra += ["--max-agent-calls", "none" if cap is None else str(cap)]
        if args.sdk is not None:
            extra += ["--sdk", args.sdk]
        extra += ["--fuzz-concurrency", str(args.concurrency)]  # fuzz cases in flight at once
        if args.concurrency > 1:  # pytest-xdist workers; the plugin gates timing-sensitive tests
            # loadgroup: one test at a time per worker as it frees up, in the plugin's order
            # (timing-sensitive first, the late suites last and together in one worker)
            extra += ["-n", str(args.concurrency), "--dist", "loadgroup", "--no-loadscope-reorder"]
        else:
            extra += ["-p", "no:xdist"]
        from chatconform.report.util import clear_run_outputs

        clear_run_outputs(report_dir)  # a run that writes no summary must not show an old one
        code = run_suites(target, families, args.strict, report_dir, args.verbose, extra)
    except (TargetError, EmbeddedError, TargetUnusable) as exc:
        raise UsageError(str(exc)) from None
    finally:
        if server is not None:
            server.stop()
    summary_path = report_dir / "summary.json"
    if code == 5:
        raise UsageError("no test was collected for the selected suites")
    if not summary_path.exists():
        if interrupt.requested():  # Ctrl-C before any suite test finished: nothing to summarise
            print("chatconform: interrupted before any test finished; no summary", file=sys.stderr)
            return 130
        raise UsageError(f"the suites did not run to the end (pytest exit {code})")
    from chatconform.report import write_run_reports

    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    if summary.get("expectations"):
        from chatconform.expectations import append_to_junit

        append_to_junit(report_dir / "junit.xml", summary["expectations"])
    write_run_reports(report_dir)
    print_summary(summary, Path(shown(report_dir)), time.monotonic() - started)
    if summary.get("interrupted") or interrupt.requested():  # never exit 0 after a Ctrl-C
        print("chatconform: interrupted; the summary holds what finished", file=sys.stderr)
        return 130
    if code == 4:
        raise UsageError(f"pytest refused the suites' arguments (exit {code})")
    if summary["verdict"] == "FAIL":
        return EXIT_FAIL
    if code == 3 or summary["verdict"] == "ERROR":
        if code == 3:
            print("chatconform: pytest stopped with an internal error: the run could not judge "
                  "every rule (exit 3)", file=sys.stderr)  # fmt: skip
        return EXIT_ERROR
    return EXIT_OK


def _agent_cap(value: str | None) -> int | None:
    """The --max-agent-calls value (agentcalls.parse_cap), a bad one a usage error."""
    try:
        return parse_cap(value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_suites(
    target: Target,
    families: list[str],
    strict: bool,
    report_dir: Path,
    verbose: bool,
    extra: list[str] | None = None,
) -> int:
    import pytest

    from chatconform.paths import resource

    suites = resource("suites")
    files = [str(suites / f"test_{f}.py") for f in families]
    files = [f for f in files if Path(f).exists()]
    if not files:
        raise UsageError(f"no suite file for {', '.join(families)} in {suites}")
    args = [*files, "-c", str(suites / "run.ini"), "--rootdir", str(suites)]
    args += ["-p", "chatconform.plugin", "-p", "chatconform.quietinterrupt"]
    args += ["-p", "no:cacheprovider", "--junitxml", str(report_dir / "junit.xml")]
    # no assertion rewriting: the suites report through findings, not bare asserts, and pytest would
    # otherwise rewrite (and, under PYTHONDONTWRITEBYTECODE, recompile on every run) each module of
    # every installed pytest plugin's package, Hypothesis and Schemathesis included: a third of a
    # fuzz run's CPU (13.4 s -> 9.5 s)
    args += ["--assert=plain"]
    parallel = "-n" in (extra or [])  # --concurrency > 1 runs the suites in xdist workers
    unused = [n for n in UNUSED_PLUGINS if not (parallel and n.startswith("xdist"))]
    args += [a for name in unused for a in ("-p", f"no:{name}")]
    args += ["-o", "junit_suite_name=chatconform", "--tb=short", "-W", "ignore::DeprecationWarning"]
    # the CLI has imported chatconform (and httpx) before pytest starts: nothing to rewrite there
    args += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    args += [] if verbose else ["-q", "--no-header", "--no-summary"]
    args += ["--report-dir", str(report_dir), "--suite", ",".join(families)]
    args += ["--timeout", str(target.limits.timeout)]
    args += ["--stream-timeout", str(target.limits.stream_timeout)]
    args += ["--run-timeout", str(target.limits.run_timeout)]
    args += ["--max-body-mb", str(target.limits.max_body_bytes / (1024 * 1024))]
    args += target_options(target)
    if strict:
        args.append("--strict-contract")
    if target.embedded:
        args.append("--embedded-target")
    args += extra or []
    from chatconform.report import pytest_args as allure_args

    args += allure_args(report_dir)
    os.environ["CHATCONFORM_QUIET_SUMMARY"] = "1"
    previous = signal.getsignal(signal.SIGINT)

    def interrupted(signum: int, frame: Any) -> None:
        interrupt.record()  # pytest reports it as its exit 2, as a collection error; raised again
        signal.default_int_handler(signum, frame)  # by each later request (chatconform.interrupt)

    previous_unraisable = sys.unraisablehook  # before and after pytest's own (quietinterrupt)
    if previous is signal.default_int_handler:  # not when a caller installed a handler of its own
        signal.signal(signal.SIGINT, interrupted)
        sys.unraisablehook = interrupt.quiet_unraisable(previous_unraisable)
    try:
        return int(pytest.main(args))
    finally:
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)
            sys.unraisablehook = previous_unraisable


def print_summary(summary: dict[str, Any], report_dir: Path, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    colour = {
        "PASS": "green",
        "FAIL": "bold red",
        "WARN": "yellow",
        "SKIP": "dim",
        "ERROR": "magenta",
        "XFAIL": "cyan",
        "XPASS": "bold yellow",
        "FLAKY": "yellow",
    }
    table = Table(title=f"chatconform: {summary['target']['baseUrl']}", show_lines=False)
    for col in ("rule", "lvl", "verdict", "title / first finding"):
        table.add_column(col, overflow="fold")
    for r in summary["rules"]:
        v = r["verdict"]
        note = r["reason"] or r["title"]
        table.add_row(r["id"], r["level"], f"[{colour[v]}]{v}[/]", note)
    console = Console(highlight=False)
    console.print(table)
    c = summary["counts"]
    mode = "strict" if summary["strict"] else "default (contract decisions WARN)"
    overall = summary["verdict"]
    console.print(
        f"[{colour.get(overall, 'bold red')}]{overall}[/]: "
        f"{c['PASS']} PASS, {c['FAIL']} FAIL, {c.get('ERROR', 0)} ERROR, {c['WARN']} WARN, "
        f"{c['SKIP']} SKIP"
        + (f", {c['FLAKY']} FLAKY" if c.get("FLAKY") else "")
        + (
            f", {c.get('XFAIL', 0)} XFAIL, {c.get('XPASS', 0)} XPASS"
            if "expectations" in summary
            else ""
        )
        + f" of {len(RULES)} rules, {mode}, in {seconds:.1f} s. Reports: {report_dir}"
    )
    if summary.get("agent"):
        from chatconform.agentcalls import bill_line

        console.print(bill_line(summary["agent"]))
    for conf in (summary.get("confirm") or {}).get("tests") or []:
        style = "yellow" if conf["outcome"] == "flaky" else "dim"
        console.print(f"[{style}]re-run {conf['outcome']}[/]: {conf['test']}: {conf['detail']}")
    section = summary.get("expectations") or {}
    for entry in section.get("entries") or []:
        if entry["status"] != "xfail":
            style = {"xpass": "bold yellow", "expired": "bold red"}.get(entry["status"], "dim")
            console.print(f"[{style}]expectation {entry['status']}[/]: {entry['message']}")
