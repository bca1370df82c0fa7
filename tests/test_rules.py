"""The rule registry matches ../shared/CONTRACT.md: every id, with its level."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatconform.rules import FAMILIES, RULES

CONTRACT = Path(__file__).resolve().parents[2] / "shared" / "CONTRACT.md"


def contract_rules() -> dict[str, str]:
    if not CONTRACT.exists():
        pytest.skip(f"{CONTRACT} is not beside this checkout")
    text = CONTRACT.read_text(encoding="utf-8")
    return dict(re.findall(r"^- ([A-Z]+-\d+) \(([DC])\)", text, flags=re.M))


def test_every_contract_rule_is_registered_with_its_level() -> None:
    rules = contract_rules()
    assert len(rules) == 39
    assert {rid: r.level for rid, r in RULES.items()} == rules


def test_every_rule_belongs_to_a_suite_family() -> None:
    assert {r.family for r in RULES.values()} == set(FAMILIES)


def test_every_rule_is_named_by_a_suite_test() -> None:
    suites = Path(__file__).resolve().parents[1] / "suites"
    text = "\n".join(p.read_text(encoding="utf-8") for p in suites.glob("test_*.py"))
    named = set(re.findall(r'"([A-Z]+-\d+)"', text))
    assert set(RULES) - named == set()
