"""Errors and the success envelope: ERR-1 to ERR-4, ENV-1.

Besides these tests, every response that any suite test provokes is checked for ERR-1 (problem
details), ERR-3 (Retry-After on 429), ERR-4 (no 5xx) and ENV-1 (the envelope) by the plugin.
"""

from __future__ import annotations

from typing import Any

import pytest

from chatconform.budget import Budget
from chatconform.checks.common import data_of, expect_status, finding
from chatconform.checks.errors import envelope, problem, validation_error
from chatconform.client import Client
from chatconform.overlap import at_once
from chatconform.plugin import Expect, unknown_id
from chatconform.verdicts import judged

RATE_PROBE_REQUESTS = 40
RATE_PROBE_WIDTH = 8


@pytest.mark.rule("ERR-2", "ERR-4")
def test_invalid_json(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    for path in ("/chat/sessions", f"/chat/sessions/{session['id']}/messages", "/chat/completions"):
        for raw in (b'{"agentId": ', b"not json", b'{"content": "x",}', b"\xff\xfe"):
            ex = api.request("POST", path, content=raw)
            expect.check(expect_status(ex, "ERR-2", 400))
            if path != "/chat/completions":
                expect.check(validation_error(ex, ("",)))


@pytest.mark.rule("ERR-2", "ERR-4")
def test_wrong_types_and_missing_fields(
    api: Client, expect: Expect, session: dict[str, Any], agent_id: str
) -> None:
    sid = session["id"]
    cases: list[tuple[str, Any, tuple[str, ...]]] = [
        ("/chat/sessions", {}, ("agentId",)),
        ("/chat/sessions", {"agentId": 5}, ("agentId",)),
        ("/chat/sessions", {"agentId": None}, ("agentId",)),
        ("/chat/sessions", {"agentId": agent_id, "draftMode": "yes"}, ("draftMode",)),
        ("/chat/sessions", [agent_id], ("",)),
        (f"/chat/sessions/{sid}/messages", {}, ("content",)),
        (f"/chat/sessions/{sid}/messages", {"content": 42}, ("content",)),
        (f"/chat/sessions/{sid}/messages", {"content": "hi", "stream": "yes"}, ("stream",)),
        (f"/chat/sessions/{sid}/messages", {"content": ["hi"]}, ("content",)),
        (f"/chat/sessions/{sid}/messages", "hi", ("",)),
    ]
    for path, body, fields in cases:
        ex = api.request("POST", path, json_body=body)
        expect.check(validation_error(ex, fields))


@pytest.mark.rule("ERR-1")
def test_problem_details(api: Client, expect: Expect) -> None:
    provoked = [
        api.get_session(unknown_id()),
        api.get_session(unknown_id(), key=None),
        api.create_session(unknown_id()),
        api.request("POST", "/chat/sessions", content=b"{"),
        api.completion({"model": unknown_id(), "messages": [{"role": "user", "content": "x"}]}),
    ]
    for ex in provoked:
        if ex.status is not None and ex.status >= 400:
            expect.check(judged(problem(ex), "ERR-1"))
        # an answer that is no error has no problem to check: whether it had to be an error is
        # the business of the rule that asks for one (SES-7, AUTH-1, SES-3, ERR-2, OAI-2)


@pytest.mark.rule("ENV-1")
def test_envelope(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    sid = session["id"]
    for ex in (
        api.get_session(sid),
        api.list_messages(sid),
        api.post_message(sid, "Envelope check"),
        api.end_session(sid),
    ):
        expect.check(expect_status(ex, "ENV-1", 200) + judged(envelope(ex), "ENV-1"))


@pytest.mark.rule("ERR-4")
def test_odd_but_schema_shaped_requests(
    api: Client, expect: Expect, session: dict[str, Any], agent_id: str, budget: Budget | None
) -> None:
    sid = session["id"]
    second = data_of(api.create_session(agent_id, draft_mode=False))
    api.create_session("\u0000\ud7ff\U0001f600 ' \" ; DROP TABLE sessions; --")
    api.create_session("x" * 10_000)
    other = second.get("id") if isinstance(second, dict) else None
    posts = [
        lambda: api.post_message(sid, "\u0000 nul and emoji \U0001f600 and rtl \u202e"),
        lambda: api.post_message(other or sid, "{{ template }} ${injection} %s %n"),
    ]
    if isinstance(other, str) and other and other != sid:
        at_once(budget, *posts)  # two sessions: the agent replies at once
    else:
        for post in posts:
            post()
    api.list_messages(sid, limit=100)
    api.list_messages(sid, cursor="\u00e9" * 300)
    api.request("GET", f"/chat/sessions/{'%2F..%2F' * 3}")
    api.request("POST", f"/chat/sessions/{sid}/end", json_body={"unexpected": True})
    api.completion({"model": agent_id, "messages": [{"role": "user", "content": None}]})
    api.completion({"model": agent_id, "messages": [{"role": "wizard", "content": "hi"}]})
    api.completion({"model": agent_id, "messages": "hi"})
    # every response above goes through ERR-4 (no 5xx) and ERR-1 in the plugin; none may be lost
    unanswered = [ex for ex in api.log if ex.status is None]
    for ex in unanswered:
        expect.check([finding("ERR-4", "an HTTP answer", ex.describe(), ex)])


@pytest.mark.rule("ERR-3")
def test_rate_limit_answers(api: Client, expect: Expect, session: dict[str, Any]) -> None:
    """A bounded burst; if the target rate-limits it, its 429s must carry Retry-After. Sent
    RATE_PROBE_WIDTH at a time (reads, no agent call), so that a client slowed by a busy machine
    still reaches a limit of tens of reads a second; it stops at the first batch with a 429."""
    limited = []
    sid = session["id"]
    for _ in range(RATE_PROBE_REQUESTS // RATE_PROBE_WIDTH):
        batch = at_once(None, *[lambda: api.get_session(sid)] * RATE_PROBE_WIDTH)
        limited += [ex for ex in batch if ex.status == 429]
        if limited:
            break
    if not limited:
        pytest.skip(
            f"no 429 in a burst of {RATE_PROBE_REQUESTS} requests: rate limiting not observed"
        )
    # each 429 is judged (Retry-After, ERR-3) by the plugin's every-response checks, once
