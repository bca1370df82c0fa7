"""`chatconform report DIR [--allure] [--compare DIR ...] [-o OUT]`.

- `chatconform report DIR`: (re)write DIR/summary.html and DIR/summary.md from DIR's summary.json
  and/or load-summary.json (+ per-request JSONL).
- `--allure`: also build the Allure HTML report from DIR/allure-results into OUT (default
  DIR/allure-report) with Allure 3 (`npx allure generate`); needs Node.js.
- `--compare DIR [DIR ...]`: matrix.html and matrix.json over DIR (if given) and the compared
  directories, written to OUT (default: the current directory).

Exit codes: 0 reports written; 2 usage error (no such run directory, Allure unavailable, ...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chatconform.paths import shown, user_paths
from chatconform.report.util import ReportError

EXIT_OK, EXIT_USAGE = 0, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dir", nargs="?", default=None, metavar="DIR", help="a report directory of a run"
    )
    parser.add_argument(
        "--allure",
        action="store_true",
        help="build the Allure HTML report from DIR/allure-results (Allure 3 via npm; needs Node)",
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        default=None,
        metavar="DIR",
        help="report directories to compare: writes matrix.html and matrix.json",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="OUT",
        help="output directory: the matrix (default .) or the Allure report (default "
        "DIR/allure-report)",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="with --allure: do not npm-install Allure 3 when it is missing",
    )


def run(args: argparse.Namespace) -> int:
    user_paths(args)  # DIR, --compare, -o: against the user's directory, before Allure runs
    try:
        return _run(args)
    except ReportError as exc:
        print(f"chatconform report: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    from chatconform.report.summary import write_run_reports

    run_dir = Path(args.dir) if args.dir else None
    if run_dir is None and not args.compare:
        raise ReportError("give a report directory (DIR) or --compare DIR [DIR ...]")
    if run_dir is not None and not run_dir.is_dir():
        raise ReportError(f"{run_dir} is not a directory")
    out = Path(args.output) if args.output else None

    if args.compare:
        from chatconform.report.matrix import write_matrix

        dirs = ([run_dir] if run_dir is not None else []) + [Path(d) for d in args.compare]
        for d in dirs:
            if not d.is_dir():
                raise ReportError(f"{d} is not a directory")
        paths = write_matrix(dirs, out or Path.cwd())
        m_json = paths[1].read_text(encoding="utf-8")
        import json

        differing = json.loads(m_json)["differing"]
        print(
            f"chatconform: matrix of {len(dirs)} runs: {shown(paths[0])} ({len(differing)} rules "
            "differ" + (f": {', '.join(differing)}" if differing else "") + ")"
        )
        return EXIT_OK

    assert run_dir is not None
    written = write_run_reports(run_dir)
    print(f"chatconform: wrote {', '.join(shown(p) for p in written)}")
    if args.allure:
        from chatconform.report.allure_html import build_allure_html
        from chatconform.report.util import read_summary

        s = read_summary(run_dir) or {}
        target = (s.get("target") or {}).get("baseUrl", "")
        name = f"chatconform {s.get('verdict', '')}: {target}".strip()
        build = build_allure_html(
            run_dir / "allure-results",
            out or run_dir / "allure-report",
            name=name,
            install=not args.no_install,
        )
        print(f"chatconform: Allure report: {shown(build.index)}")
        if out is None:  # summary.html links each rule to its entry in DIR/allure-report
            write_run_reports(run_dir)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """For `python -m chatconform.report.cli` until cli.py wires the subcommand."""
    parser = argparse.ArgumentParser(prog="chatconform report")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
