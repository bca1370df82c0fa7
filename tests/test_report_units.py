"""Report pieces without a server: the load section and its plots, Allure grading of harness errors
and unreachable targets, secret scrubbing, and the message when Node.js is missing."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chatconform.report import write_run_reports
from chatconform.report.allure_html import ensure_allure
from chatconform.report.allure_results import CATEGORIES, AllureAugmenter
from chatconform.report.load import parse_sample, read_load
from chatconform.report.redact import scrub
from chatconform.report.util import ReportError
from chatconform.verdicts import Finding
from fake_items import FakeItem, FakeReport

SUMMARY = {
    "verdict": "PASS",
    "strict": False,
    "target": {"baseUrl": "http://127.0.0.1:9/api/v1", "embedded": True},
    "counts": {"PASS": 1, "FAIL": 0, "WARN": 0, "SKIP": 0},
    "families": ["auth"],
    "harnessErrors": [],
    "rules": [
        {
            "id": "AUTH-1",
            "level": "D",
            "family": "auth",
            "title": "t",
            "verdict": "PASS",
            "reason": "",
            "tests": [],
            "findings": [],
        }
    ],
}


def _load_fixture(d: Path, n: int = 120) -> None:
    """A load-summary.json in issue 5's shape and per-request JSONL with ns timelines."""
    rng = random.Random(7)
    lines = []
    for i in range(n):
        start = 1_000_000_000_000 + i * 50_000_000
        sent = start + 200_000
        first = sent + int(rng.gauss(20, 2) * 1e6)
        deltas = [first]
        for _ in range(7):
            deltas.append(deltas[-1] + int(rng.gauss(5, 0.5) * 1e6))
        rec: dict[str, Any] = {
            "endpoint": "sessions" if i % 2 else "completions",
            "ok": i % 30 != 0,
            "timeline": {"intended": start, "sent": sent, "first_delta": first, "deltas": deltas},
        }
        rec["timeline"]["terminal"] = deltas[-1] + 1_000_000
        lines.append(json.dumps(rec))
    (d / "requests.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pct = {"p50": 20.1, "p90": 22.0, "p95": 23.0, "p99": 25.5, "max": 27.0}
    ep = {
        "requests": n // 2,
        "errors": 2,
        "incomplete": 0,
        "ttft_ms": pct,
        "itl_ms": pct,
        "tpot_ms": pct,
        "e2e_ms": pct,
        "tokens_per_s": 160.0,
        "requests_per_s": 10.0,
    }
    summary = {
        "verdict": "FAIL",
        "endpoints": {"sessions": ep, "completions": ep},
        "thresholds": [
            {"name": "ttft_p95_ms", "limit": 20, "actual": 23.0, "ok": False},
            {"name": "error_rate", "limit": 0.05, "actual": 0.03, "ok": True},
        ],
        "client": {"cpu_percent": 12.5, "loop_lag_p99_ms": 0.8, "late_share": 0.0},
    }
    (d / "load-summary.json").write_text(json.dumps(summary), encoding="utf-8")


def test_load_section_with_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY), encoding="utf-8")
    _load_fixture(tmp_path)
    html_path, md_path = write_run_reports(tmp_path)
    html = html_path.read_text(encoding="utf-8")
    assert 'id="load-verdict" data-verdict="FAIL"' in html
    assert html.count('src="data:image/png;base64,') == 4
    for title in ("TTFT", "ITL", "Latency over time", "Throughput over time"):
        assert f'alt="{title}' in html
    assert 'id="thresholds"' in html
    assert "ttft_p95_ms" in html
    md = md_path.read_text(encoding="utf-8")
    assert "## chatconform conformance" in md
    assert "## chatconform load: ❌ FAIL" in md
    assert re.search(r"^\| sessions \| 60 \| 2 \| 0 \| 20\.1 / 23\.0 / 25\.5 \|", md, re.M)


def test_load_only_directory_and_derived_metrics(tmp_path: Path) -> None:
    _load_fixture(tmp_path, n=10)
    run = read_load(tmp_path)
    assert run is not None
    assert len(run.samples) == 10
    s = run.samples[1]
    assert s.ok
    assert s.ttft_ms is not None
    assert 10 < s.ttft_ms < 30
    assert len(s.itl_ms) == 7
    assert s.tokens == 8
    assert s.start_s is not None
    assert run.samples[0].start_s == 0.0
    assert not run.samples[0].ok
    paths = write_run_reports(tmp_path)
    assert "Load verdict" in paths[0].read_text(encoding="utf-8")
    flat = parse_sample({"endpoint": "x", "ttft_ms": 3, "itl_ms": [1, 2], "start_s": 1.5})
    assert (flat.ttft_ms, flat.itl_ms, flat.start_s, flat.ok) == (3.0, [1.0, 2.0], 1.5, True)


def test_chatconform_load_records(tmp_path: Path) -> None:
    """The shape `chatconform load` writes to requests.jsonl (src/chatconform/load/timeline.py)."""
    rec = {
        "endpoint": "sessions",
        "wall": 1795718400.5,
        "outcome": "ok",
        "status": 200,
        "sent_ms": 1000.0,
        "content_ms": [1020.0, 1025.0, 1031.0],
        "terminal_ms": 1033.0,
    }
    s = parse_sample(rec)
    assert (s.ok, s.ttft_ms, s.itl_ms, s.e2e_ms, s.tokens) == (True, 20.0, [5.0, 6.0], 33.0, 3)
    assert not parse_sample(rec | {"outcome": "incomplete"}).ok


def test_empty_directory_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"summary\.json"):
        write_run_reports(tmp_path)


def test_scrub_masks_values_and_key_shaped_tokens() -> None:
    key = "flowyte_sk_test_" + "A1b2C3d4E5f6G7h8I9j0"
    assert scrub(f"Bearer {key}", [("FLOWYTE_API_KEY", key)]) == "Bearer $FLOWYTE_API_KEY"
    other = "flowyte_pk_live_" + "Zz9Yy8Xx7Ww6Vv5Uu4"
    assert scrub(f"echo {other}!") == "echo flowyte_pk_live_[redacted]!"
    assert scrub("flowyte_sk_bogus") == "flowyte_sk_bogus"  # a short, made-up key stays readable


def test_no_node_gives_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CHATCONFORM_ALLURE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CHATCONFORM_ALLURE", raising=False)
    with pytest.raises(ReportError) as exc:
        ensure_allure()
    msg = str(exc.value)
    assert "Node.js" in msg
    assert f"npm install --prefix {tmp_path / 'cache'} allure@3" in msg


# -- Allure grading of harness errors ---------------------------------------------------------
@dataclass
class _State:
    strict: bool = False
    target: Any = None
    findings: list[Finding] = field(default_factory=list)


def _augment(finding: Finding) -> Any:
    from allure_commons.model2 import TestResult

    finding.test = "suite.py::test_x"
    aug = AllureAugmenter(config=None, state=_State(findings=[finding]), alluredir=Path("."))  # type: ignore[arg-type]
    aug.current = FakeItem("suite.py::test_x", (finding.rule,))  # type: ignore[assignment]
    aug.reports = [FakeReport(failed=True)]  # type: ignore[list-item]
    result = TestResult(name="test_x", status="broken")
    aug.augment(result)
    return result


def _category(status: str, message: str) -> str | None:
    for c in CATEGORIES:
        if status in c["matchedStatuses"] and re.search(c.get("messageRegex", ""), message):
            return str(c["name"])
    return None


def test_allure_unreachable_target_fails_and_run_errors_are_broken() -> None:
    unreachable = Finding(
        rule="SES-1",
        expected="the test to complete",
        got="POST http://127.0.0.1:9/api/v1/chat/sessions: ConnectError",
        evidence={"request": {"method": "POST", "url": "u"}, "response": None, "error": "refused"},
    )
    r = _augment(unreachable)
    assert r.status == "failed"  # the target's doing: FAIL
    assert r.statusDetails.message.startswith("TARGET UNREACHABLE")
    assert _category(r.status, r.statusDetails.message) == (
        "Target did not answer (FAIL): unreachable or timed out"
    )
    assert [lb.value for lb in r.labels if lb.name == "verdict"] == ["FAIL"]

    harness = Finding(
        rule="SES-1", expected="a verdict", got="harness error KeyError", kind="harness"
    )
    r = _augment(harness)
    assert r.status == "broken"
    assert r.statusDetails.message.startswith("HARNESS ERROR")
    assert [lb.value for lb in r.labels if lb.name == "verdict"] == ["ERROR"]
    assert (
        _category(r.status, r.statusDetails.message)
        == "Run errors (ERROR): exceptions in the harness"
    )
    budget = Finding(rule="SES-1", expected="a verdict", got="not sent: deadline", kind="budget")
    r = _augment(budget)
    assert r.status == "broken"
    assert [lb.value for lb in r.labels if lb.name == "verdict"] == ["ERROR"]
    assert _category(r.status, r.statusDetails.message) == (
        "Run errors (ERROR): requests the run's budget did not send"
    )

    contract = Finding(rule="SES-1", expected="201", got="200")
    r = _augment(contract)
    assert r.status == "failed"
    assert _category(r.status, r.statusDetails.message) == "Contract failures: documented rules (D)"
    warn = Finding(rule="SES-3", expected="404", got="400")
    r = _augment(warn)
    assert r.status == "passed"
    assert r.statusDetails.message.startswith("CONTRACT WARN (C) SES-3")


def test_allure_note_never_changes_the_status() -> None:
    from allure_commons.model2 import TestResult

    note = Finding(rule="SES-1", expected="x", got="y", level="I")
    note.test = "suite.py::test_x"
    aug = AllureAugmenter(config=None, state=_State(findings=[note]), alluredir=Path("."))  # type: ignore[arg-type]
    aug.current = FakeItem("suite.py::test_x", ("SES-1",))  # type: ignore[assignment]
    aug.reports = [FakeReport(failed=False)]  # type: ignore[list-item]
    result = TestResult(name="test_x", status="passed")
    aug.augment(result)
    assert result.status == "passed"
    assert [lb.value for lb in result.labels if lb.name == "verdict"] == ["PASS"]


def test_allure_behaviour_labels_read_by_rule() -> None:
    """Behaviors: epic = family, feature = rule, story = the clauses a test examined or charged."""
    from chatconform.report.allure_results import behaviour_labels, feature_name
    from chatconform.rules import RULES

    rules = [RULES["AUTH-2"], RULES["SSE-4"], RULES["AUTH-1"]]
    labels = behaviour_labels(rules, {("AUTH-2", "write-only"), ("SSE-4", "delta")})
    by: dict[str, list[str]] = {}
    for lb in labels:
        by.setdefault(lb.name, []).append(lb.value)
    assert by["epic"] == ["auth", "streaming"]
    assert by["feature"] == [feature_name(r) for r in rules]
    assert by["feature"][0].startswith("AUTH-2: ")
    assert [s.split(":")[0] for s in by["story"]] == ["AUTH-2/write-only", "SSE-4/delta"]
    assert all(RULES[s.split("/")[0]].clauses for s in by["story"])

    contract = Finding(rule="AUTH-2", expected="403", got="200", clause="read-only")
    r = _augment(contract)
    stories = [lb.value for lb in r.labels if lb.name == "story"]
    assert stories == [f"AUTH-2/read-only: {dict(RULES['AUTH-2'].clauses)['read-only']}"]
    assert [lb.value for lb in r.labels if lb.name == "epic"] == ["auth"]


def _error_summary() -> dict[str, Any]:
    s = json.loads(json.dumps(SUMMARY))
    s["verdict"] = "ERROR"
    s["counts"] = {"PASS": 1, "FAIL": 0, "WARN": 0, "SKIP": 0, "ERROR": 1}
    s["rules"].append(
        {
            "id": "SES-1", "level": "D", "family": "sessions", "title": "t", "verdict": "ERROR",
            "reason": "harness error KeyError", "tests": ["suites/test_sessions.py::test_x"],
            "findings": [{"rule": "SES-1", "level": "D", "message": "harness error KeyError",
                          "expected": "a verdict", "got": "harness error KeyError"}],
        }
    )  # fmt: skip
    return s


def test_error_verdict_is_shown_and_counted_everywhere(tmp_path: Path) -> None:
    """ERROR (the run could not judge) has its own colour, icon and count in summary.html/md and the
    matrix, sorts after FAIL and before WARN, and shows its finding."""
    from chatconform.report.matrix import build_matrix, render_matrix_html

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(_error_summary()), encoding="utf-8")
    html_path, md_path = write_run_reports(run)
    html = html_path.read_text(encoding="utf-8")
    assert 'class="banner v-ERROR"' in html
    assert '<span data-count="ERROR"><span class="badge v-ERROR">ERROR</span> 1</span>' in html
    assert ".badge.v-ERROR {" in html
    assert html.index('id="rule-SES-1"') < html.index('id="rule-AUTH-1"')  # worse first
    assert 'data-evidence-for="SES-1"' in html
    md = md_path.read_text(encoding="utf-8")
    assert "## chatconform conformance: ⛔ ERROR" in md
    assert "1 ERROR" in md
    assert "| SES-1 | D | ⛔ ERROR |" in md
    m = build_matrix([run])
    page = render_matrix_html(m)
    assert '<span class="badge v-ERROR">ERROR</span>' in page
    assert "1 ERROR" in page


def test_summary_links_each_rule_to_its_allure_entry(tmp_path: Path) -> None:
    """With DIR/allure-report present, each rule links to a result of its own verdict there
    (Allure 3 names a result md5(uuid)); without it, no link."""
    import hashlib

    run = tmp_path / "run"
    results = run / "allure-results"
    results.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(_error_summary()), encoding="utf-8")
    for uid, rule, verdict in (("u-pass", "SES-1", "PASS"), ("u-err", "SES-1", "ERROR")):
        labels = [{"name": "rule", "value": rule}, {"name": "verdict", "value": verdict}]
        (results / f"{uid}-result.json").write_text(json.dumps({"uuid": uid, "labels": labels}))
    (results / "broken-result.json").write_text("{not json")
    html = write_run_reports(run)[0].read_text(encoding="utf-8")
    assert "allure-report/index.html#" not in html  # no Allure report yet
    (run / "allure-report").mkdir()
    (run / "allure-report" / "index.html").write_text("<html></html>")
    html = write_run_reports(run)[0].read_text(encoding="utf-8")
    want = hashlib.md5(b"u-err").hexdigest()
    assert f'href="allure-report/index.html#{want}"' in html
    assert html.count('class="allure"') == 1  # AUTH-1 has no Allure result: no link


def test_a_run_clears_only_what_an_earlier_run_wrote(tmp_path: Path) -> None:
    from chatconform.report.util import clear_run_outputs

    ours = ["summary.json", "summary.html", "summary.md", "junit.xml", "fuzz.json"]
    ours += ["schemathesis-junit.xml", "schemathesis-junit-gw1.xml"]
    kept = ["load-summary.json", "requests.jsonl", "verification.json", "notes.txt"]
    for name in ours + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / "allure-results").mkdir()
    assert sorted(clear_run_outputs(tmp_path)) == sorted(ours)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, "allure-results"])
    assert clear_run_outputs(tmp_path / "missing") == []  # a new directory: nothing to do
