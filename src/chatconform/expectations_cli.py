"""`chatconform expectations update --from reports/<run> [-o FILE]`: write or refresh an
expectations file from a run's failures (chatconform.expectations.update_from_summary)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chatconform import expectations
from chatconform.errors import EXIT_OK, UsageError


def run(args: argparse.Namespace) -> int:
    summary_path = Path(args.from_dir) / "summary.json"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except OSError:
        raise UsageError(
            f"{summary_path} not found: give a `chatconform run` report directory"
        ) from None
    except ValueError as exc:
        raise UsageError(f"{summary_path} is not JSON: {exc}") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("rules"), list):
        raise UsageError(f"{summary_path} is not a chatconform summary (no 'rules' list)")
    out = Path(args.output or expectations.DEFAULT_FILE)
    existing = expectations.load(out) if out.exists() else []
    entries, notes = expectations.update_from_summary(summary, existing, expectations.today_utc())
    out.write_text(expectations.dump(entries, out), encoding="utf-8")
    for line in notes:
        print(f"chatconform expectations: {line}")
    print(f"chatconform expectations: {len(entries)} entries -> {out}")
    return EXIT_OK
