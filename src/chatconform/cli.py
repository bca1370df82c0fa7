"""chatconform's command line: `run` (conformance), `serve` (the reference server)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from chatconform.preflight import TargetUnusable, check_target
from chatconform.rules import FAMILIES, RULES
from chatconform.target import (
    TARGET_FIELDS,
    Limits,
    Target,
    TargetError,
    add_target_arguments,
    resolve_target,
)

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
SUITES: tuple[str, ...] = (*FAMILIES, "fuzz")  # fuzz checks rules of every family


class UsageError(Exception):
    """A problem with how chatconform was called or what it was pointed at: exit 2, one line."""


def _add_target_options(p: argparse.ArgumentParser) -> None:
    g = add_target_arguments(p)
    g.add_argument("--timeout", type=float, default=10.0, help="seconds per connect/read (10)")
    g.add_argument(
        "--stream-timeout", type=float, default=30.0, help="seconds per exchange or stream (30)"
    )
    g.add_argument(
        "--max-body-mb", type=float, default=8.0, help="byte cap per body or stream, MiB (8)"
    )
    g.add_argument(
        "--run-timeout", type=float, default=600.0,
        help="seconds for the whole run; later requests are not sent and fail (600)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatconform",
        description="Conformance and load-testing harness for the Flowyte Chat API.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the conformance suites against a target")
    _add_target_options(run)
    run.add_argument("--strict", action="store_true", help="contract decisions (C) FAIL, not WARN")
    run.add_argument(
        "--suite", action="append", default=None, metavar="NAME",
        help=f"a suite, repeatable: {', '.join(SUITES)} (default: all)",
    )  # fmt: skip
    run.add_argument("--seed", type=int, default=None, help="the fuzz suite's seed (printed)")
    run.add_argument(
        "--max-examples", type=int, default=None, help="the fuzz suite's examples per operation"
    )
    run.add_argument("--report-dir", default=None, help="where to write reports")
    run.add_argument("-v", "--verbose", action="store_true", help="pytest's per-test output")

    serve = sub.add_parser("serve", help="start the embedded reference server")
    from chatconform.reference.cli import add_arguments

    add_arguments(serve)

    load = sub.add_parser("load", help="measure streaming latency under load (Locust)")
    from chatconform.load.cli import add_arguments as add_load_arguments

    add_load_arguments(load)

    report = sub.add_parser("report", help="summary.html/md, Allure HTML, matrix across targets")
    from chatconform.report.cli import add_arguments as add_report_arguments

    add_report_arguments(report)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            from chatconform.reference.cli import serve

            return serve(args)
        if args.command == "load":
            from chatconform.load.cli import run as run_load

            return run_load(args)
        if args.command == "report":
            from chatconform.report.cli import run as run_report

            return run_report(args)
        return run_command(args)
    except UsageError as exc:
        print(f"chatconform: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("chatconform: interrupted", file=sys.stderr)
        return 130


def _families(selected: list[str] | None) -> list[str]:
    if not selected:
        return list(SUITES)
    names = [n for s in selected for n in s.split(",") if n]
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise UsageError(f"unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}")
    return names


def run_command(args: argparse.Namespace) -> int:
    from chatconform.embedded import EmbeddedError, EmbeddedServer, reference_args_from_env

    families = _families(args.suite)
    for name in ("timeout", "stream_timeout", "run_timeout"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive number of seconds")
    if args.max_body_mb <= 0:
        raise UsageError("--max-body-mb must be a positive number")
    limits = Limits(
        args.timeout,
        args.stream_timeout,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        run_timeout=args.run_timeout,
    )
    report_dir = Path(args.report_dir or Path("reports") / time.strftime("%Y%m%d-%H%M%S"))
    explicit = {a: getattr(args, a) for a in TARGET_FIELDS}
    server: EmbeddedServer | None = None
    started = time.monotonic()
    try:
        target = resolve_target(explicit, args.target_file, limits)
        if target is None:
            server = EmbeddedServer(reference_args_from_env(), limits)
            target = server.start()
            print(f"chatconform: no --base-url given; started the reference at {target.base_url}")
        sessions = bool(set(families) - {"completions"})
        check_target(target, sessions, "completions" in families or "fuzz" in families)
        extra = []
        if args.seed is not None:
            extra += ["--fuzz-seed", str(args.seed)]
        if args.max_examples is not None:
            extra += ["--fuzz-max-examples", str(args.max_examples)]
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
        raise UsageError(f"the suites did not run to the end (pytest exit {code})")
    from chatconform.report import write_run_reports

    write_run_reports(report_dir)
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    print_summary(summary, report_dir, time.monotonic() - started)
    if summary.get("interrupted"):
        print("chatconform: interrupted; the summary holds what finished", file=sys.stderr)
        return 130
    if code in (3, 4):
        raise UsageError(f"pytest stopped with an internal or usage error (exit {code})")
    return EXIT_FAIL if summary["verdict"] == "FAIL" else EXIT_OK


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
    args = [*files, "-c", str(suites / "pytest.ini"), "--rootdir", str(suites)]
    args += ["-p", "no:cacheprovider", "--junitxml", str(report_dir / "junit.xml")]
    args += ["-o", "junit_suite_name=chatconform", "--tb=short", "-W", "ignore::DeprecationWarning"]
    # the CLI has imported chatconform (and httpx) before pytest starts: nothing to rewrite there
    args += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    args += [] if verbose else ["-q", "--no-header", "--no-summary"]
    args += ["--report-dir", str(report_dir), "--families", ",".join(families)]
    args += ["--timeout", str(target.limits.timeout)]
    args += ["--stream-timeout", str(target.limits.stream_timeout)]
    args += ["--run-timeout", str(target.limits.run_timeout)]
    args += ["--max-body-mb", str(target.limits.max_body_bytes / (1024 * 1024))]
    for attr in TARGET_FIELDS:
        value = getattr(target, attr)
        if value:
            args += ["--" + attr.replace("_", "-"), value]
    if strict:
        args.append("--strict-contract")
    if target.embedded:
        args.append("--embedded-target")
    args += extra or []
    from chatconform.report import pytest_args as allure_args

    args += allure_args(report_dir)
    os.environ["CHATCONFORM_QUIET_SUMMARY"] = "1"
    return int(pytest.main(args))


def print_summary(summary: dict[str, Any], report_dir: Path, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    colour = {"PASS": "green", "FAIL": "bold red", "WARN": "yellow", "SKIP": "dim"}
    table = Table(title=f"chatconform: {summary['target']['baseUrl']}", show_lines=False)
    for col in ("rule", "lvl", "verdict", "title / first finding"):
        table.add_column(col, overflow="fold")
    for r in summary["rules"]:
        v = r["verdict"]
        note = r["title"] if v == "PASS" else (r["reason"] or r["title"])
        table.add_row(r["id"], r["level"], f"[{colour[v]}]{v}[/]", note)
    console = Console(highlight=False)
    console.print(table)
    c = summary["counts"]
    mode = "strict" if summary["strict"] else "default (contract decisions WARN)"
    console.print(
        f"[{colour['PASS' if summary['verdict'] == 'PASS' else 'FAIL']}]{summary['verdict']}[/]: "
        f"{c['PASS']} PASS, {c['FAIL']} FAIL, {c['WARN']} WARN, {c['SKIP']} SKIP of {len(RULES)} "
        f"rules, {mode}, in {seconds:.1f} s. Reports: {report_dir}"
    )


if __name__ == "__main__":
    sys.exit(main())
