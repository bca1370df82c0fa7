"""Verdicts of whole runs: ERROR apart from FAIL (exit 3), the same verdicts run after run, and the
rule registry as the one definition the docs and the spec refer to."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from chatconform import rules, spec

from harness import chatconform

ROOT = Path(__file__).resolve().parents[1]


def test_docs_rules_md_is_generated_from_the_registry() -> None:
    committed = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert committed == rules.markdown(), "regenerate: python -m chatconform.rules > docs/rules.md"
    for r in rules.RULES.values():
        assert f"| {r.id} | {r.level} |" in committed


def test_an_unknown_rule_id_in_the_spec_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    doc: dict[str, Any] = copy.deepcopy(spec.load_spec())
    spec.check_rule_ids(doc)  # the committed spec names only registered rules
    doc["components"]["schemas"]["Session"]["x-rules"] = ["SES-4", "SES-99"]
    with pytest.raises(rules.UnknownRule, match="SES-99") as err:
        spec.check_rule_ids(doc)
    assert "components/schemas/Session" in str(err.value)


def test_a_harness_exception_is_error_exit_3_not_a_failure(tmp_path: Path) -> None:
    env = {
        "PYTEST_ADDOPTS": "-p harness_fault_plugin",
        "PYTHONPATH": str(Path(__file__).parent),
    }
    run = chatconform("run", "--strict", "--suite", "sessions", report_dir=tmp_path, env=env)
    assert run.code == 3, run.stdout[-3000:] + run.stderr[-2000:]
    summary = run.summary
    assert summary["verdict"] == "ERROR"
    verdicts = run.verdicts()
    assert verdicts["SES-1"] == "ERROR"
    assert verdicts["SES-4"] == "ERROR"
    assert "FAIL" not in verdicts.values()
    ses4 = next(r for r in summary["rules"] if r["id"] == "SES-4")
    assert ses4["findings"][0]["kind"] == "harness"
    assert "injected harness fault" in ses4["reason"]
    assert any("injected harness fault" in e for e in summary["harnessErrors"])
    assert "ERROR" in run.stdout
