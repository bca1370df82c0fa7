"""The evidence model, clause by clause: a clause examined clean earns PASS, one not exercised never
does (SKIP with the reason, or a partial PASS naming it).

First for every clause of every registered rule at the level of `grade_rules`; then for the clauses
the suites judge (SES-2, SES-3, AUTH-4), by running the suite's own test function over recorded
observations through a stand-in for the Client (no network), and grading what it handed to
`expect`. The checks' own evidence (SSE-4, SSE-6, SSE-8, MSG-7, ERR-3, ENV-1, ...) is asserted in
the test_checks_*.py files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chatconform.checks.sessions import created
from chatconform.plugin import Expect
from chatconform.rules import RULES
from chatconform.verdicts import Finding, Outcome, RuleVerdict, grade_rules

from observations import (
    AGENT_ID,
    CREATED_AT,
    MESSAGES_PATH,
    SESSION_ID,
    RecordedApi,
    enveloped,
    json_response,
    problem_response,
    session,
    suite_module,
    turn_messages,
)

CLAUSES = [(r.id, c) for r in RULES.values() for c in r.clause_ids]
SEVERAL = [(r.id, c) for r in RULES.values() if len(r.clauses) > 1 for c in r.clause_ids]


def verdict_of(out: Outcome, rule: str, strict: bool = True) -> RuleVerdict:
    vs = grade_rules(out, out.examined, {}, strict, unexercised=out.unexercised)
    return next(v for v in vs if v.id == rule)


def clause_table(v: RuleVerdict) -> dict[str, tuple[str, int]]:
    return {c.id: (c.verdict, c.evidence) for c in v.clauses}


# -- every clause of every rule, at the level of grade_rules --------------------------------


def test_the_clauses_the_issue_names_are_registered() -> None:
    assert RULES["SSE-4"].clause_ids == ("delta", "tool_call", "kb_retrieval")
    assert RULES["SSE-6"].clause_ids == ("done", "error")
    assert RULES["SES-3"].clause_ids == ("unknown-agent", "foreign-agent")
    assert RULES["AUTH-4"].clause_ids == ("get", "list", "post", "end")
    assert RULES["MSG-7"].clause_ids == ("dropped-mid-stream",)
    assert RULES["ERR-3"].clause_ids == ("429",)


@pytest.mark.parametrize(("rule", "clause"), CLAUSES, ids=[f"{r}/{c}" for r, c in CLAUSES])
def test_a_clause_examined_clean_passes(rule: str, clause: str) -> None:
    v = verdict_of(Outcome().saw(rule, clause), rule)
    assert v.verdict == "PASS"
    assert clause_table(v)[clause] == ("PASS", 1)
    others = [c for c in RULES[rule].clause_ids if c != clause]
    assert all(clause_table(v)[c] == ("SKIP", 0) for c in others)
    if others:  # a partial PASS names every clause not exercised
        n = len(RULES[rule].clauses)
        assert v.reason == v.partial
        assert v.partial.startswith(f"1/{n} clauses: ")
        assert all(c in v.partial for c in others)
    else:
        assert v.reason == ""


@pytest.mark.parametrize(("rule", "clause"), CLAUSES, ids=[f"{r}/{c}" for r, c in CLAUSES])
def test_a_clause_not_exercised_is_never_a_pass(rule: str, clause: str) -> None:
    why = f"{clause} could not be provoked"
    v = verdict_of(Outcome().not_exercised(rule, clause, why), rule)
    assert v.verdict == "SKIP"
    assert clause_table(v)[clause] == ("SKIP", 0)
    assert next(c.reason for c in v.clauses if c.id == clause) == why
    if RULES[rule].clause_ids[0] == clause:
        assert v.reason == why


@pytest.mark.parametrize(("rule", "clause"), SEVERAL, ids=[f"{r}/{c}" for r, c in SEVERAL])
def test_the_other_clauses_examined_pass_partially_naming_this_one(rule: str, clause: str) -> None:
    out = Outcome().not_exercised(rule, clause, "not provoked here")
    for other in RULES[rule].clause_ids:
        if other != clause:
            out.saw(rule, other, n=2)
    v = verdict_of(out, rule)
    n = len(RULES[rule].clauses)
    assert v.verdict == "PASS"
    assert v.reason == f"{n - 1}/{n} clauses: {clause} not provoked here"
    assert clause_table(v)[clause] == ("SKIP", 0)


@pytest.mark.parametrize(("rule", "clause"), CLAUSES, ids=[f"{r}/{c}" for r, c in CLAUSES])
def test_a_clause_examined_with_a_finding_is_not_a_pass(rule: str, clause: str) -> None:
    out = Outcome([Finding(rule, "e", "g", clause=clause)]).saw(rule, clause)
    v = verdict_of(out, rule)
    assert v.verdict == "FAIL"
    assert clause_table(v)[clause] == ("FAIL", 1)


# -- the suites' clauses, judged over recorded observations ---------------------------------


def run_suite_test(module: str, test: str, **kwargs: Any) -> Outcome:
    expect = Expect()
    getattr(suite_module(module), test)(expect=expect, **kwargs)
    return expect.outcome


def page_messages(items: list[Any]) -> Any:
    body = {"success": True, "data": items, "pagination": {"nextCursor": None, "limit": 50}}
    return json_response(200, body, path=MESSAGES_PATH)


def create_reply(data: Any, status: int = 201) -> Any:
    return enveloped(data, status=status, method="POST", path="/chat/sessions")


# SES-3: unknown agent, foreign agent


def agent_not_found() -> Any:
    return problem_response(404, "agent_not_found", method="POST", path="/chat/sessions")


def test_ses3_without_a_foreign_agent_passes_one_clause_and_names_the_other() -> None:
    api = RecordedApi(create_session=[agent_not_found()])
    target = SimpleNamespace(other_tenant_agent_id=None)
    out = run_suite_test("sessions", "test_unknown_agent", api=api, target=target)
    assert out == []
    v = verdict_of(out, "SES-3")
    assert clause_table(v) == {"unknown-agent": ("PASS", 1), "foreign-agent": ("SKIP", 0)}
    assert v.verdict == "PASS"
    assert v.reason == (
        "1/2 clauses: foreign-agent not configured: give --other-tenant-agent-id "
        "or FLOWYTE_OTHER_TENANT_AGENT_ID"
    )


def test_ses3_with_a_foreign_agent_exercises_both_clauses() -> None:
    api = RecordedApi(create_session=[agent_not_found(), agent_not_found()])
    target = SimpleNamespace(other_tenant_agent_id="agt_foreign")
    out = run_suite_test("sessions", "test_unknown_agent", api=api, target=target)
    assert api.calls["create_session"][1][0] == ("agt_foreign",)
    v = verdict_of(out, "SES-3")
    assert (v.verdict, v.reason) == ("PASS", "")
    assert clause_table(v) == {"unknown-agent": ("PASS", 1), "foreign-agent": ("PASS", 1)}


def test_ses3_a_foreign_agent_accepted_fails_its_clause() -> None:
    api = RecordedApi(create_session=[agent_not_found(), create_reply(session())])
    target = SimpleNamespace(other_tenant_agent_id="agt_foreign")
    v = verdict_of(
        run_suite_test("sessions", "test_unknown_agent", api=api, target=target), "SES-3"
    )
    assert v.verdict == "FAIL"
    assert clause_table(v) == {"unknown-agent": ("PASS", 1), "foreign-agent": ("FAIL", 1)}


def test_ses3_an_answer_that_breaks_err1_leaves_the_clause_not_judged() -> None:
    plain = json_response(404, {"error": "agent_not_found"}, method="POST", path="/chat/sessions")
    api = RecordedApi(create_session=[plain])
    target = SimpleNamespace(other_tenant_agent_id=None)
    out = run_suite_test("sessions", "test_unknown_agent", api=api, target=target)
    assert out == []  # ERR-1 is every_response's; SES-3 does not fail a second time
    v = verdict_of(out, "SES-3")
    assert v.verdict == "SKIP"
    assert v.reason.startswith("not judged: see ERR-1 on POST ")


# SES-2: draft, no-published-version, defaults-false


def no_published_version() -> Any:
    return problem_response(409, "no_published_version", method="POST", path="/chat/sessions")


def test_ses2_draft_mode_suite_exercises_two_clauses_and_a_plain_create_the_third() -> None:
    unpublished = "agt_unpublished"
    draft = create_reply(session(agentId=unpublished, draftMode=True))
    api = RecordedApi(create_session=[no_published_version(), no_published_version(), draft])
    target = SimpleNamespace(unpublished_agent_id=unpublished)
    out = run_suite_test("sessions", "test_draft_mode", api=api, target=target)
    assert out == []
    v = verdict_of(out, "SES-2")
    assert clause_table(v) == {
        "draft": ("PASS", 1),
        "no-published-version": ("PASS", 2),
        "defaults-false": ("SKIP", 0),
    }
    assert v.reason == "2/3 clauses: defaults-false not exercised by any check"
    out += created(create_reply(session()), AGENT_ID)  # what every suite's session fixture does
    v = verdict_of(out, "SES-2")
    assert (v.verdict, v.reason) == ("PASS", "")


def test_ses2_an_unpublished_agent_accepted_without_draft_mode_fails_that_clause() -> None:
    unpublished = "agt_unpublished"
    accepted = create_reply(session(agentId=unpublished))
    draft = create_reply(session(agentId=unpublished, draftMode=True))
    api = RecordedApi(create_session=[accepted, no_published_version(), draft])
    target = SimpleNamespace(unpublished_agent_id=unpublished)
    v = verdict_of(run_suite_test("sessions", "test_draft_mode", api=api, target=target), "SES-2")
    assert v.verdict == "FAIL"
    assert clause_table(v)["no-published-version"] == ("FAIL", 2)
    assert clause_table(v)["draft"] == ("PASS", 1)


# AUTH-4: get, list, post, end


def not_found(method: str, path: str) -> Any:
    return problem_response(404, "session_not_found", method=method, path=path)


def auth4_api(**override: Any) -> RecordedApi:
    sid = f"/chat/sessions/{SESSION_ID}"
    probes = {
        "get": not_found("GET", sid),
        "list": not_found("GET", f"{sid}/messages"),
        "post": not_found("POST", f"{sid}/messages"),
        "post-stream": not_found("POST", f"{sid}/messages"),
        "end": not_found("POST", f"{sid}/end"),
    }
    probes.update(override)
    seeded = enveloped({"messages": turn_messages()}, method="POST", path=f"{sid}/messages")
    return RecordedApi(
        post_message=[seeded, probes["post"], probes["post-stream"]],
        get_session=[probes["get"], enveloped(session())],
        list_messages=[probes["list"], page_messages(turn_messages())],
        end_session=[probes["end"]],
    )


def run_auth4(api: RecordedApi) -> Outcome:
    target = SimpleNamespace(other_tenant_key="flowyte_sk_test_other")
    the_session = session(createdAt=CREATED_AT)
    return run_suite_test(
        "auth", "test_other_organization", api=api, session=the_session, target=target
    )


def test_auth4_every_clause_exercised() -> None:
    api = auth4_api()
    out = run_auth4(api)
    assert out == []
    assert [kw.get("key") for _, kw in api.calls["end_session"]] == ["flowyte_sk_test_other"]
    v = verdict_of(out, "AUTH-4")
    assert (v.verdict, v.reason) == ("PASS", "")
    # post: the two cross-tenant posts (plain and streamed); the set-up post with the
    # organization's own key is MSG-2's, not AUTH-4's evidence
    assert clause_table(v) == {
        "get": ("PASS", 1),
        "list": ("PASS", 1),
        "post": ("PASS", 2),
        "end": ("PASS", 1),
    }


def test_auth4_a_probe_answered_without_a_problem_leaves_its_clause_not_judged() -> None:
    plain = json_response(404, {"error": "not found"}, method="POST", path="/x/end")
    v = verdict_of(run_auth4(auth4_api(end=plain)), "AUTH-4")
    assert v.verdict == "PASS"
    assert clause_table(v)["end"] == ("SKIP", 0)
    assert v.reason.startswith("3/4 clauses: end not judged: see ERR-1 on POST ")


def test_auth4_another_organizations_session_read_fails_the_get_clause() -> None:
    leaked = enveloped(session())
    v = verdict_of(run_auth4(auth4_api(get=leaked)), "AUTH-4")
    assert v.verdict == "FAIL"
    assert clause_table(v)["get"][0] == "FAIL"
    assert clause_table(v)["list"] == ("PASS", 1)


def test_auth4_a_403_is_a_c_finding_of_its_clause() -> None:
    forbidden = problem_response(403, "forbidden", method="GET", path="/x/messages")
    out = run_auth4(auth4_api(list=forbidden))
    assert {(f.clause, f.effective_level()) for f in out} >= {("list", "C")}
    assert clause_table(verdict_of(out, "AUTH-4", strict=False))["list"][0] == "FAIL"


# -- the plugin: a marker is never evidence; the harness's own failure is ERROR --------------

PLUGIN_SUITE = """
import pytest

from chatconform.verdicts import clean


@pytest.mark.rule("SSE-5")
def test_marker_only(expect):
    pass


@pytest.mark.rule("SSE-7")
def test_examined(expect):
    expect.check(clean("SSE-7", n=3))


@pytest.mark.rule("SSE-6")
def test_one_clause(expect):
    expect.check(clean("SSE-6", "done"))
    expect.unexercised("SSE-6", "error", "no error prompt given")


@pytest.mark.rule("SSE-8")
def test_harness_breaks(expect):
    expect.check(clean("SSE-8"))
    raise RuntimeError("a bug of ours")
"""


def test_plugin_earns_pass_from_evidence_only(tmp_path: Path) -> None:
    """A suite run with the plugin (bounded subprocess; no request is sent): its summary.json."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "test_evidence_suite.py").write_text(PLUGIN_SUITE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYTE_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["CHATCONFORM_QUIET_SUMMARY"] = "1"
    cmd = [
        sys.executable, "-m", "pytest", "-p", "chatconform.plugin", "-p", "no:cacheprovider",
        "-q", "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"),
        "--base-url", "http://127.0.0.1:9/api/v1", "--strict-contract",
        "--report-dir", str(tmp_path / "reports"), str(tmp_path / "test_evidence_suite.py"),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text(encoding="utf-8"))
    rules = {r["id"]: r for r in summary["rules"]}
    # named by a marker, nothing examined: SKIP, never PASS
    assert rules["SSE-5"]["verdict"] == "SKIP"
    assert rules["SSE-5"]["clauses"] == [
        {"id": "all", "verdict": "SKIP", "evidence": 0, "reason": "not exercised by any check"}
    ]
    assert rules["SSE-7"]["verdict"] == "PASS"
    assert rules["SSE-7"]["clauses"][0]["evidence"] == 3
    assert rules["SSE-6"]["verdict"] == "PASS"
    assert rules["SSE-6"]["reason"] == "1/2 clauses: error no error prompt given"
    # the harness broke after examining SSE-8: ERROR (not FAIL, and not PASS from the evidence)
    assert rules["SSE-8"]["verdict"] == "ERROR"
    assert rules["SSE-8"]["findings"][0]["kind"] == "harness"
    assert "a bug of ours" in rules["SSE-8"]["reason"]
    assert summary["verdict"] == "ERROR"
    assert summary["counts"]["ERROR"] == 1
    assert summary["counts"]["FAIL"] == 0
    assert len(summary["harnessErrors"]) == 1
