"""The rule registry matches the project's copy of the contract (specs/CONTRACT.md): every id, with
its level; every clause id is unique within its rule; every rule id a suite marker names exists, and
an unknown one stops collection."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chatconform.rules import FAMILIES, RULES, UnknownRule, clause_of, rule

from observations import suite_module

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "specs" / "CONTRACT.md"
SUITES = ROOT / "suites"
RULE_LINE = re.compile(r"^- ([A-Z]+-\d+) \(([DCI])\)", flags=re.M)


def contract_rules() -> dict[str, str]:
    """Rule id -> level, from the contract's `- ID (L) ...` lines (never skipped: it is in the repo)."""
    found = RULE_LINE.findall(CONTRACT.read_text(encoding="utf-8"))
    ids = [rid for rid, _ in found]
    assert len(ids) == len(set(ids)), "a rule id is declared twice in the contract"
    return dict(found)


def marker_ids() -> dict[str, set[str]]:
    """Every id named by a `@pytest.mark.rule(...)` in suites/, per suite test (from the imported
    suite modules, so ids spread from a tuple count too)."""
    out: dict[str, set[str]] = {}
    for path in sorted(SUITES.glob("test_*.py")):
        module = suite_module(path.stem.removeprefix("test_"))
        for name, fn in vars(module).items():
            if not name.startswith("test_") or not callable(fn):
                continue
            for mark in getattr(fn, "pytestmark", []):
                if mark.name == "rule":
                    out.setdefault(f"{path.name}::{name}", set()).update(mark.args)
    return out


def test_the_contract_copy_is_in_the_repository() -> None:
    assert CONTRACT.is_file()
    shared = ROOT.parents[1] / "shared" / "CONTRACT.md"  # when checked out beside ../shared
    if shared.is_file():
        assert contract_rules() == dict(RULE_LINE.findall(shared.read_text(encoding="utf-8")))


def test_every_contract_rule_is_registered_with_its_level() -> None:
    rules = contract_rules()
    assert len(rules) == 39
    assert {rid: r.level for rid, r in RULES.items()} == rules


def test_the_contract_defines_the_levels_it_uses() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    for level in set(contract_rules().values()) | {"I"}:
        assert re.search(rf"^- \*\*{level}, ", text, flags=re.M), f"level {level} undefined"


def test_every_rule_belongs_to_a_suite_family() -> None:
    assert {r.family for r in RULES.values()} == set(FAMILIES)


@pytest.mark.parametrize("rule_id", list(RULES))
def test_clause_ids_are_unique_within_their_rule(rule_id: str) -> None:
    ids = RULES[rule_id].clause_ids
    assert ids
    assert len(ids) == len(set(ids))
    assert all(isinstance(c, str) and c and c.strip() == c for c in ids)
    if len(ids) > 1:  # every clause of a rule with several says what it covers
        assert all(what for _, what in RULES[rule_id].clauses)


def test_clause_of() -> None:
    assert clause_of("SSE-5", None) == "all"
    assert clause_of("ERR-3", None) == "429"
    assert clause_of("SSE-4", "tool_call") == "tool_call"
    with pytest.raises(UnknownRule, match="name one"):
        clause_of("SSE-4", None)
    with pytest.raises(UnknownRule, match="no clause 'x'"):
        clause_of("SSE-4", "x")
    with pytest.raises(UnknownRule, match="unknown contract rule id 'SSE-0'"):
        rule("SSE-0")


def test_every_rule_is_named_by_a_suite_marker() -> None:
    named = set().union(*marker_ids().values())
    assert set(RULES) - named == set()


def test_every_suite_marker_names_a_registered_rule() -> None:
    ids = marker_ids()
    assert len(ids) > 20  # the suites are found and their tests carry markers
    assert {"SSE-5", "ERR-4", "OAI-2"} <= ids["test_fuzz.py::test_stateless"]
    unknown = {name: sorted(rids - set(RULES)) for name, rids in ids.items() if rids - set(RULES)}
    assert unknown == {}


UNKNOWN_MARKER_SUITE = """
import pytest


@pytest.mark.rule("SSE-5")
def test_known():
    pass


@pytest.mark.rule("SSE-99")
def test_unknown():
    pass
"""


def collect(suite: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`pytest --collect-only` of one suite file with the chatconform plugin, bounded in time. The
    target is a closed port: collection sends nothing, and no embedded server is started."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYTE_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the plugin under test (hypothesis is slow)
    cmd = [
        sys.executable, "-m", "pytest", "-p", "chatconform.plugin", "-p", "no:cacheprovider",
        "--collect-only", "-q", "--rootdir", str(tmp_path),
        "-c", str(tmp_path / "pytest.ini"), "--base-url", "http://127.0.0.1:9/api/v1",
        "--report-dir", str(tmp_path / "reports"), str(suite),
    ]  # fmt: skip
    return subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def test_a_marker_with_an_unknown_rule_id_fails_collection(tmp_path: Path) -> None:
    suite = tmp_path / "test_unknown_marker.py"
    suite.write_text(UNKNOWN_MARKER_SUITE, encoding="utf-8")
    proc = collect(suite, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert "test_unknown_marker.py::test_unknown: unknown contract rule id 'SSE-99'" in out


def test_known_markers_collect(tmp_path: Path) -> None:
    # the same run with only the known marker collects: the failure above is the unknown id's
    suite = tmp_path / "test_known_marker.py"
    suite.write_text(UNKNOWN_MARKER_SUITE.split('\n\n\n@pytest.mark.rule("SSE-99")')[0] + "\n")
    proc = collect(suite, tmp_path)
    assert proc.returncode == pytest.ExitCode.OK, proc.stdout + proc.stderr
    assert "test_known_marker.py::test_known" in proc.stdout
