"""Small shared helpers: reading a run's summary.json, verdict ordering, text truncation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# worst first, as chatconform.verdicts.ORDER: FAIL, ERROR (the run could not judge), XPASS (an
# expected failure that passes: remove its entry), FLAKY (a failure that did not recur on re-run),
# WARN, XFAIL (an expected failure), SKIP, PASS
VERDICT_ORDER: dict[str, int] = {
    "FAIL": 0, "ERROR": 1, "XPASS": 2, "FLAKY": 3, "WARN": 4, "XFAIL": 5, "SKIP": 6, "PASS": 7,
}  # fmt: skip
# the order reports count verdicts in (every verdict of chatconform.verdicts.VERDICTS)
COUNT_ORDER: tuple[str, ...] = ("FAIL", "ERROR", "WARN", "SKIP", "PASS")
# verdicts only some runs give (--confirm re-runs, --expectations): counted where they occur
OPTIONAL_COUNTS: tuple[str, ...] = ("FLAKY", "XFAIL", "XPASS")
SUMMARY_FILE = "summary.json"
LOAD_SUMMARY_FILE = "load-summary.json"
# what `chatconform run` writes into its report directory (load files and anything else are kept)
RUN_OUTPUTS: tuple[str, ...] = (
    SUMMARY_FILE, "summary.html", "summary.md", "junit.xml", "fuzz.json", "schemathesis-junit*.xml",
)  # fmt: skip


def clear_run_outputs(report_dir: Path) -> list[str]:
    """Delete what an earlier `chatconform run` wrote into `report_dir`; returns the names.

    A run that stops before it writes its own summary (a Ctrl-C before any test finished, a crash)
    must not leave the previous run's summary.json to be read, printed and uploaded as its own.
    """
    removed = []
    for pattern in RUN_OUTPUTS:
        for path in sorted(report_dir.glob(pattern)):
            if path.is_file():
                path.unlink()
                removed.append(path.name)
    return removed


class ReportError(Exception):
    """A report cannot be built from what is in the directory (exit 2, one line)."""


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None


def read_summary(report_dir: Path) -> dict[str, Any] | None:
    """The run's summary.json, or None when the directory holds no conformance run."""
    path = report_dir / SUMMARY_FILE
    if not path.exists():
        return None
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ReportError(f"{path} is not a chatconform summary (no 'rules' list)")
    return data


def count_keys(counts: Any, always: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The verdicts a report counts: COUNT_ORDER, then the optional ones that occur (or `always`)."""
    c = counts if isinstance(counts, dict) else {}
    return (*COUNT_ORDER, *(k for k in OPTIONAL_COUNTS if k in always or c.get(k)))


def sorted_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failures first, then errors, warnings, skips and passes; registry order within each."""
    indexed = list(enumerate(rules))
    indexed.sort(key=lambda p: (VERDICT_ORDER.get(p[1].get("verdict", ""), 9), p[0]))
    return [r for _, r in indexed]


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def first_finding(rule: dict[str, Any]) -> str:
    """The line a person reads first: the first finding's message, else the reason."""
    findings = rule.get("findings") or []
    if findings:
        return str(findings[0].get("message") or "")
    return str(rule.get("reason") or "")
