"""Reports built from a run's report directory: summary.html, summary.md, Allure, matrices.

- `write_run_reports(report_dir)`: summary.html and summary.md from summary.json (and the load
  run's load-summary.json / per-request JSONL when present); appends summary.md to
  `$GITHUB_STEP_SUMMARY` when that variable is set.
- `pytest_args(report_dir)`: the pytest arguments that make a run write Allure results.
- `chatconform.report.cli`: the `chatconform report` subcommand.
"""

from __future__ import annotations

from chatconform.report.allure_results import pytest_args
from chatconform.report.summary import write_run_reports

__all__ = ["pytest_args", "write_run_reports"]
