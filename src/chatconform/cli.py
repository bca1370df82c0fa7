"""chatconform's command line: parses the arguments and hands each command to its own module
(`run`: chatconform.run, `serve`: reference.cli, `load`: load.cli, `report`: report.cli)."""

from __future__ import annotations

import argparse
import sys

from chatconform.agentcalls import DEFAULT_MAX_AGENT_CALLS
from chatconform.errors import EXIT_USAGE, UsageError
from chatconform.fuzz.seed import DEFAULT_SEED, seed_argument
from chatconform.interrupt import exit_module_main
from chatconform.rules import FAMILIES
from chatconform.target import (
    add_target_arguments,
)

SUITES: tuple[str, ...] = (*FAMILIES, "fuzz")  # fuzz checks rules of every family
DEFAULT_CONCURRENCY = 4  # tests in flight at once (pytest-xdist workers) for `run`


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


def _add_config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", default=None, metavar="FILE",
        help="config file (default: ./chatconform.toml, else [tool.chatconform] in ./pyproject.toml)",
    )  # fmt: skip


def _add_run_options(run: argparse.ArgumentParser) -> None:
    """The options of `run` (and of `verify`, which runs the same suites)."""
    _add_target_options(run)
    run.add_argument(
        "--strict", "--strict-contract", dest="strict", action="store_true",
        help="contract decisions (C) FAIL, not WARN (pytest suites/: --strict-contract)",
    )  # fmt: skip
    run.add_argument(
        "--suite", action="append", default=None, metavar="NAME",
        help=f"a suite, repeatable: {', '.join(SUITES)} (default: all)",
    )  # fmt: skip
    run.add_argument(
        "--seed", type=seed_argument, default=None,
        help="the fuzz suite's seed, an integer or 'random' (default: $FLOWYTE_SEED, else "
        f"{DEFAULT_SEED}; printed)",
    )  # fmt: skip
    run.add_argument(
        "--max-examples", type=int, default=None, help="the fuzz suite's examples per operation"
    )
    run.add_argument(
        "--max-agent-calls", default=None, metavar="N",
        help="requests that may invoke the target's agent (posts, completions) beyond N are not "
        "sent; rules left unexercised are SKIP ('none': no cap; default "
        f"{DEFAULT_MAX_AGENT_CALLS})",
    )  # fmt: skip
    run.add_argument(
        "--concurrency", type=int, default=None, metavar="N",
        help="tests run at once against the target (timing-sensitive ones alone; 1: one at a "
        f"time, in order; default {DEFAULT_CONCURRENCY})",
    )  # fmt: skip
    run.add_argument("--report-dir", default=None, help="where to write reports")
    run.add_argument(
        "--expectations", default=None, metavar="FILE",
        help="known-failure expectations (YAML or TOML): expected failures are XFAIL",
    )  # fmt: skip
    run.add_argument(
        "--strict-expectations", action="store_true", default=None,
        help="an expected failure that now passes (XPASS) fails the run",
    )  # fmt: skip
    run.add_argument(
        "--confirm", type=int, default=1, metavar="N",
        help="re-run a test that failed on the target's findings up to N more times; a failure "
        "that does not recur is FLAKY (default 1; 0: no re-runs)",
    )  # fmt: skip
    run.add_argument(
        "--flaky", choices=("fail", "warn"), default=None,
        help="whether a FLAKY rule fails the run (default: fail under --strict, else warn)",
    )  # fmt: skip
    run.add_argument(
        "--sdk", default=None, metavar="LANGS",
        help="the official SDKs OAI-5 runs: python, node, both comma-separated, or none; one left "
        "out is SKIP with that reason (default: python,node)",
    )  # fmt: skip
    run.add_argument("-v", "--verbose", action="store_true", help="pytest's per-test output")
    _add_config_option(run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatconform",
        description="Conformance and load-testing harness for the Flowyte Chat API.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the conformance suites against a target")
    _add_run_options(run)

    verify = sub.add_parser(
        "verify", help="release verification: conformance + load thresholds, one verdict"
    )
    _add_run_options(verify)
    from chatconform.verify import add_arguments as add_verify_arguments

    add_verify_arguments(verify)

    serve = sub.add_parser("serve", help="start the embedded reference server")
    from chatconform.reference.cli import add_arguments

    add_arguments(serve)

    load = sub.add_parser("load", help="measure streaming latency under load (Locust)")
    from chatconform.load.cli import add_arguments as add_load_arguments

    add_load_arguments(load)

    report = sub.add_parser("report", help="summary.html/md, Allure HTML, matrix across targets")
    from chatconform.report.cli import add_arguments as add_report_arguments

    add_report_arguments(report)

    exp = sub.add_parser("expectations", help="known-failure expectations files")
    exp_sub = exp.add_subparsers(dest="exp_command", required=True, metavar="ACTION")
    upd = exp_sub.add_parser("update", help="write or refresh the file from a run's failures")
    upd.add_argument("--from", dest="from_dir", required=True, metavar="REPORT_DIR",
                     help="a run's report directory (holds summary.json)")  # fmt: skip
    upd.add_argument("-o", "--output", default=None, metavar="FILE",
                     help="the file to write (default chatconform-expectations.yaml)")  # fmt: skip

    cfg = sub.add_parser("config", help="the merged configuration and where each value came from")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = cfg_sub.add_parser("show", help="print the merged, redacted configuration")
    _add_config_option(show)
    return parser


def _configure(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> None:
    """Fill what the command line did not give from the config file (chatconform.config)."""
    from chatconform import config

    cfg = config.load(getattr(args, "config", None))
    explicit = config.explicit_dests(parser, argv)
    args.config_settings = config.apply(args, cfg, explicit)
    args.config_file = cfg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        if args.command == "config":
            from chatconform.config_cli import show

            return show(parser, args)
        if args.command in ("run", "verify"):
            _configure(parser, args, argv)
        if args.command == "verify":
            from chatconform.verify import verify_command

            return verify_command(args)
        if args.command == "serve":
            from chatconform.reference.cli import serve

            return serve(args)
        if args.command == "load":
            from chatconform.load.cli import run as run_load

            return run_load(args)
        if args.command == "expectations":
            from chatconform.expectations_cli import run as run_expectations

            return run_expectations(args)
        if args.command == "report":
            from chatconform.report.cli import run as run_report

            return run_report(args)
        from chatconform.run import run_command

        return run_command(args)
    except UsageError as exc:
        print(f"chatconform: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("chatconform: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    exit_module_main(main())
