"""Session lifecycle: SES-1 to SES-7."""

from __future__ import annotations

from typing import Any

import pytest

from chatconform.checks.common import data_of, expect_problem_code, expect_status, finding
from chatconform.checks.sessions import created, ended, same_session
from chatconform.client import Client
from chatconform.plugin import Expect, need, unknown_id
from chatconform.target import Target
from chatconform.verdicts import Outcome


@pytest.mark.rule("SES-1", "SES-4")
def test_create_then_get(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    ex = api.get_session(session["id"])
    expect.check(same_session(ex, session))


@pytest.mark.rule("SES-2")
def test_draft_mode(api: Client, expect: Expect, target: Target) -> None:
    unpublished = need(target.unpublished_agent_id, "--unpublished-agent-id")
    clause = "no-published-version"
    ex = api.create_session(unpublished)
    expect.check(expect_problem_code(ex, "SES-2", 409, "no_published_version", clause=clause))
    ex = api.create_session(unpublished, draft_mode=False)
    expect.check(expect_problem_code(ex, "SES-2", 409, "no_published_version", clause=clause))
    ex = api.create_session(unpublished, draft_mode=True)
    expect.check(created(ex, unpublished, draft_mode=True, rule="SES-2"))


@pytest.mark.rule("SES-3")
def test_unknown_agent(api: Client, expect: Expect, target: Target) -> None:
    ex = api.create_session(unknown_id())
    expect.check(expect_problem_code(ex, "SES-3", 404, "agent_not_found", clause="unknown-agent"))
    if not target.other_tenant_agent_id:
        why = "not configured: give --other-tenant-agent-id or FLOWYTE_OTHER_TENANT_AGENT_ID"
        expect.unexercised("SES-3", "foreign-agent", why)
        return
    ex = api.create_session(target.other_tenant_agent_id)
    expect.check(expect_problem_code(ex, "SES-3", 404, "agent_not_found", clause="foreign-agent"))


@pytest.mark.rule("SES-5")
def test_end_is_idempotent(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    sid = session["id"]
    first = api.end_session(sid)
    expect.check(ended(first, sid), fatal=True)
    ended_at = data_of(first)["endedAt"]
    again = api.end_session(sid)
    expect.check(ended(again, sid, ended_at))
    readable = api.get_session(sid)
    expect.check(ended(readable, sid, ended_at))


@pytest.mark.rule("SES-5")
def test_end_with_empty_object(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    ex = api.request("POST", f"/chat/sessions/{session['id']}/end", json_body={})
    expect.check(ended(ex, session["id"]))


@pytest.mark.rule("SES-6")
def test_post_to_ended_session(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    sid = session["id"]
    expect.check(expect_status(api.end_session(sid), "SES-6", 200), fatal=True)
    before = api.list_messages(sid)
    expect.check(expect_status(before, "SES-6", 200), fatal=True)
    for stream in (False, True):
        ex = api.post_message(sid, "Are you still there?", stream=stream)
        expect.check(expect_problem_code(ex, "SES-6", 409, "session_ended"))
    after = api.list_messages(sid)
    unchanged = Outcome()
    if after.status == 200:
        unchanged.saw("SES-6")
    if data_of(after) != data_of(before):
        n_before, n_after = len(data_of(before) or []), len(data_of(after) or [])
        got = f"{n_after} messages after posting to the ended session"
        unchanged.add(finding("SES-6", f"history unchanged ({n_before} messages)", got, after))
    expect.check(unchanged)


@pytest.mark.rule("SES-7")
def test_unknown_session(api: Client, expect: Expect) -> None:
    sid = unknown_id()
    for ex in (
        api.get_session(sid),
        api.list_messages(sid),
        api.post_message(sid, "hello"),
        api.post_message(sid, "hello", stream=True),
        api.end_session(sid),
    ):
        expect.check(expect_problem_code(ex, "SES-7", 404, "session_not_found"))
