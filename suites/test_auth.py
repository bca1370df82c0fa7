"""Keys, scopes and tenancy: AUTH-1 to AUTH-5."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from chatconform.checks.common import data_of, expect_problem_code, expect_status, finding
from chatconform.client import Client
from chatconform.plugin import Expect, need
from chatconform.record import Exchange
from chatconform.target import Target

Call = Callable[..., Exchange]


def every_operation(api: Client, sid: str, agent_id: str) -> dict[str, Call]:
    """One call per operation, taking the same keyword arguments (key=, auth_scheme=, ...)."""
    return {
        "createSession": lambda **kw: api.create_session(agent_id, **kw),
        "getSession": lambda **kw: api.get_session(sid, **kw),
        "listMessages": lambda **kw: api.list_messages(sid, **kw),
        "postMessage": lambda **kw: api.post_message(sid, "auth probe", **kw),
        "endSession": lambda **kw: api.end_session(sid, **kw),
        "createChatCompletion": lambda **kw: api.completion(
            {"model": agent_id, "messages": [{"role": "user", "content": "auth probe"}]}, **kw
        ),
    }


WRITE_OPS = ("createSession", "postMessage", "endSession", "createChatCompletion")
READ_OPS = ("getSession", "listMessages")


@pytest.mark.rule("AUTH-1")
def test_missing_or_bad_key(
    api: Client, expect: Expect, session: dict[str, Any], agent_id: str
) -> None:
    ops = every_operation(api, session["id"], agent_id)
    unknown = "flowyte_sk_test_" + secrets.token_urlsafe(24)
    for name, call in ops.items():
        expect.check(expect_status(call(key=None), "AUTH-1", 401))
        expect.check(expect_status(call(key=unknown), "AUTH-1", 401))
        expect.check(expect_status(call(key="not-a-flowyte-key"), "AUTH-1", 401))
        expect.check(expect_status(call(key=""), "AUTH-1", 401))
        if name == "getSession":
            basic = call(key=api.target.api_key, auth_scheme="Basic")
            expect.check(expect_status(basic, "AUTH-1", 401))


@pytest.mark.rule("AUTH-2")
def test_read_only_key(
    api: Client, expect: Expect, session: dict[str, Any], target: Target
) -> None:
    key = need(target.read_only_key, "--read-only-key")
    ops = every_operation(api, session["id"], need(target.agent_id, "--agent-id"))
    for name in READ_OPS:
        expect.check(expect_status(ops[name](key=key), "AUTH-2", 200, clause="read-only"))
    for name in WRITE_OPS:
        expect.check(expect_status(ops[name](key=key), "AUTH-2", 403, clause="read-only"))
    still = api.get_session(session["id"])
    if (data_of(still) or {}).get("status") != "active":
        got = still.describe()
        expect.check(
            [finding("AUTH-2", "the session still active", got, still, clause="read-only")]
        )


@pytest.mark.rule("AUTH-2")
def test_write_only_key(
    api: Client, expect: Expect, session: dict[str, Any], target: Target
) -> None:
    key = need(target.write_only_key, "--write-only-key")
    ops = every_operation(api, session["id"], need(target.agent_id, "--agent-id"))
    for name in READ_OPS:
        expect.check(expect_status(ops[name](key=key), "AUTH-2", 403, clause="write-only"))
    created = ops["createSession"](key=key)
    expect.check(expect_status(created, "AUTH-2", (200, 201), clause="write-only"))
    posted = ops["postMessage"](key=key)
    expect.check(expect_status(posted, "AUTH-2", 200, clause="write-only"))


@pytest.mark.rule("AUTH-3")
def test_publishable_key(
    api: Client, expect: Expect, session: dict[str, Any], target: Target
) -> None:
    key = need(target.publishable_key, "--publishable-key")
    ops = every_operation(api, session["id"], need(target.agent_id, "--agent-id"))
    for call in ops.values():
        expect.check(expect_status(call(key=key), "AUTH-3", (401, 403)))


@pytest.mark.rule("AUTH-4")
def test_other_organization(
    api: Client, expect: Expect, session: dict[str, Any], target: Target
) -> None:
    other = need(target.other_tenant_key, "--other-tenant-key")
    sid = session["id"]
    secret_text = f"tenancy canary {secrets.token_hex(8)}"
    seeded = api.post_message(sid, secret_text)
    expect.check(expect_status(seeded, "MSG-2", 200), fatal=True)  # the set-up, own key
    probes = [
        ("get", api.get_session(sid, key=other)),
        ("list", api.list_messages(sid, key=other)),
        ("post", api.post_message(sid, "cross-tenant write", key=other)),
        ("post", api.post_message(sid, "cross-tenant write", stream=True, key=other)),
        ("end", api.end_session(sid, key=other)),
    ]
    leaks = (secret_text, session["agentId"], session["createdAt"])
    for clause, ex in probes:
        found = expect_problem_code(ex, "AUTH-4", 404, "session_not_found", clause=clause)
        if ex.status in (401, 403):
            found.add(
                finding("AUTH-4", "404 rather than 403", f"HTTP {ex.status}", ex, "C", clause)
            )
        body = ex.body.decode("utf-8", "replace")
        for leaked in leaks:
            if leaked and leaked in body:
                got = f"the response body contains {leaked!r}"
                found.add(
                    finding("AUTH-4", "nothing of the session leaked", got, ex, clause=clause)
                )
        expect.check(found)
    after = api.get_session(sid)
    state = data_of(after) or {}
    if state.get("status") != "active":
        got = f"status {state.get('status')!r} after another organization's end"
        expect.check([finding("AUTH-4", "the session untouched", got, after, clause="end")])
    history = json.dumps(data_of(api.list_messages(sid)))
    if "cross-tenant write" in history:
        got = "another organization's message in the history"
        expect.check([finding("AUTH-4", "the session untouched", got, after, clause="post")])


@pytest.mark.rule("AUTH-5")
def test_scheme_case_and_key_placement(
    api: Client, expect: Expect, session: dict[str, Any], target: Target
) -> None:
    sid = session["id"]
    key = need(target.api_key, "--api-key")
    for scheme in ("bearer", "BEARER", "BeArEr"):
        expect.check(expect_status(api.get_session(sid, auth_scheme=scheme), "AUTH-5", 200))
    path = f"/chat/sessions/{sid}"
    for param in ("api_key", "key", "access_token", "token"):
        ex = api.request("GET", path, params={param: key}, key=None)
        expect.check(expect_status(ex, "AUTH-5", 401))
    for header in ("X-API-Key", "Api-Key", "X-Auth-Token"):
        ex = api.request("GET", path, key=None, headers={header: key})
        expect.check(expect_status(ex, "AUTH-5", 401))
    ex = api.request("GET", path, key=None, headers={"Authorization": key})
    expect.check(expect_status(ex, "AUTH-5", 401))
