"""examples/: the CI gate as a team runs it (issue 11, "Done when"): the reference with one fault
passes with the fault's rule XFAIL; the healthy reference gives XPASS "remove this entry" (failing
under --strict-expectations); an expired entry fails the gate; `verify` writes verification.json."""

from __future__ import annotations

import json
from pathlib import Path

from harness import chatconform

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONFIG = str(EXAMPLES / "chatconform.toml")
FAULT = {"CHATCONFORM_REFERENCE_ARGS": "--fault seq-gap"}  # breaks SSE-7 only


def test_faulty_reference_passes_with_its_rule_xfail(tmp_path: Path) -> None:
    run = chatconform("run", "--config", CONFIG, report_dir=tmp_path, env=FAULT)
    assert run.code == 0, (run.stdout + run.stderr)[-3000:]
    assert run.verdicts()["SSE-7"] == "XFAIL"
    entries = run.summary["expectations"]["entries"]
    assert [(e["rule"], e["status"], e["observed"]) for e in entries] == [
        ("SSE-7", "xfail", "FAIL")
    ]
    junit = (tmp_path / "junit.xml").read_text()
    assert 'type="pytest.xfail"' in junit
    assert "XFAIL" in (tmp_path / "summary.md").read_text()


def test_healthy_reference_says_remove_this_entry(tmp_path: Path) -> None:
    run = chatconform("run", "--config", CONFIG, report_dir=tmp_path / "a")
    assert run.code == 0, (run.stdout + run.stderr)[-3000:]
    assert run.verdicts()["SSE-7"] == "XPASS"
    assert "remove this entry" in run.stdout.replace("\n", " ")
    strict = chatconform(
        "run", "--config", CONFIG, "--strict-expectations", report_dir=tmp_path / "b"
    )
    assert strict.code == 1
    assert strict.summary["verdict"] == "FAIL"


def test_an_expired_entry_fails_the_gate_naming_it(tmp_path: Path) -> None:
    expired = str(EXAMPLES / "expired-expectations.yaml")
    run = chatconform(
        "run", "--config", CONFIG, "--expectations", expired, report_dir=tmp_path, env=FAULT
    )
    assert run.code == 1
    rule = next(r for r in run.summary["rules"] if r["id"] == "SSE-7")
    assert rule["verdict"] == "FAIL"
    assert "expired on 2025-01-31" in rule["reason"]
    assert "seq-gap fault" in rule["reason"]


def test_verify_writes_one_verdict_and_verification_json(tmp_path: Path) -> None:
    run = chatconform(
        "verify", "--config", CONFIG, "--report-dir", str(tmp_path), report_dir=tmp_path, env=FAULT
    )
    assert run.code == 0, (run.stdout + run.stderr)[-3000:]
    record = json.loads((tmp_path / "verification.json").read_text())
    assert record["verdict"] == "PASS"
    assert record["conformance"]["expectations"]["xfail"] == 1
    assert record["load"]["profile"] == "gate"
    assert record["load"]["verdict"] == "PASS"
    assert len(record["spec"]["chat-api.yaml"]) == 64
    assert record["seed"] is None or isinstance(record["seed"], int)
    assert record["config"]["file"] == CONFIG
    for name in ("summary.json", "load-summary.json", "summary.html", "junit.xml"):
        assert (tmp_path / name).exists(), name
    html = (tmp_path / "summary.html").read_text()
    assert 'id="load"' in html
    assert 'id="expectations"' in html
    assert '<div id="verification" data-verdict="PASS">' in html
    assert (tmp_path / "summary.md").read_text().startswith("## chatconform verify:")
