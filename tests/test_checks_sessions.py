"""Unit tests of chatconform.checks.sessions (SES-1, SES-2, SES-4, SES-5) on hand-built responses."""

from __future__ import annotations

from typing import Any

import pytest

from chatconform.checks import sessions
from chatconform.record import Exchange

from observations import (
    AGENT_ID,
    SESSION_ID,
    enveloped,
    evidence,
    exchange,
    json_response,
    levels,
    no_response,
    problem_response,
    rules,
    session,
)

ENDED_AT = "2025-01-01T00:05:00Z"


def create_reply(data: Any, status: int = 201) -> Exchange:
    return enveloped(data, status=status, method="POST", path="/chat/sessions")


# -- session_shape ---------------------------------------------------------------------------


def test_session_shape_correct_is_fine() -> None:
    found = sessions.session_shape(session(), None)
    assert found == []
    assert evidence(found) == {("SES-4", "all")}
    assert sessions.session_shape(session(status="ended", endedAt=ENDED_AT, extra=1), None) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", None),
        ("id", ""),
        ("agentId", 5),
        ("status", "closed"),
        ("draftMode", "false"),
        ("createdAt", "yesterday"),
        ("createdAt", "2025-13-01T00:00:00Z"),
        ("endedAt", "soon"),
        ("endedAt", ...),
    ],
)
def test_session_shape_wrong_is_ses4(field: str, value: Any) -> None:
    s = session()
    if value is ...:
        del s[field]
    else:
        s[field] = value
    found = sessions.session_shape(s, None)
    assert rules(found) == {"SES-4"}
    assert levels(found, "SES-4") == {"C"}


def test_session_shape_ended_without_ended_at_is_ses4() -> None:
    assert rules(sessions.session_shape(session(status="ended"), None)) == {"SES-4"}


def test_session_shape_not_an_object_is_ses4() -> None:
    assert rules(sessions.session_shape(None, None)) == {"SES-4"}
    assert rules(sessions.session_shape([session()], None)) == {"SES-4"}


# -- SES-1 / SES-2: created ------------------------------------------------------------------


def test_created_correct_is_fine() -> None:
    found = sessions.created(create_reply(session()), AGENT_ID)
    assert found == []
    # a plain create examines SES-2's default (draftMode false), never its draft clause
    # one response: one observation of each
    assert dict(found.examined) == {
        ("SES-1", "all"): 1,
        ("SES-4", "all"): 1,
        ("SES-2", "defaults-false"): 1,
    }
    assert not found.unexercised


def test_created_draft_is_fine() -> None:
    ex = create_reply(session(draftMode=True))
    found = sessions.created(ex, AGENT_ID, draft_mode=True, rule="SES-2")
    assert found == []
    assert dict(found.examined) == {("SES-2", "draft"): 1, ("SES-4", "all"): 1}


def test_created_draft_findings_name_the_draft_clause() -> None:
    ex = create_reply(session(agentId="agt_other"))
    found = sessions.created(ex, AGENT_ID, draft_mode=True, rule="SES-2")
    assert {(f.rule, f.clause) for f in found} == {("SES-2", "draft")}
    assert len(found) == 2  # the agentId and the draftMode


def test_created_200_instead_of_201_is_ses1_c() -> None:
    found = sessions.created(create_reply(session(), status=200), AGENT_ID)
    assert rules(found) == {"SES-1"}
    assert levels(found, "SES-1") == {"C"}


@pytest.mark.parametrize(
    "ex",
    [
        problem_response(400, "validation_error", method="POST", path="/chat/sessions"),
        problem_response(404, "agent_not_found", method="POST", path="/chat/sessions"),
        problem_response(500, "internal", method="POST", path="/chat/sessions"),
        exchange(302, method="POST", path="/chat/sessions"),
        no_response(),
    ],
    ids=["400", "404", "500", "302", "no-response"],
)
def test_created_non_2xx_is_ses1_d(ex: Exchange) -> None:
    found = sessions.created(ex, AGENT_ID)
    assert rules(found) == {"SES-1"}
    assert levels(found, "SES-1") == {"D"}
    # no session came back: SES-2's draftMode and SES-4's shape were not examined
    assert evidence(found) == (set() if ex.status is None else {("SES-1", "all")})


def test_created_draft_non_2xx_is_reported_under_ses2_d() -> None:
    ex = problem_response(409, "no_published_version", method="POST", path="/chat/sessions")
    found = sessions.created(ex, AGENT_ID, draft_mode=True, rule="SES-2")
    assert rules(found) == {"SES-2"}
    assert levels(found, "SES-2") == {"D"}
    assert [f.clause for f in found] == ["draft"]
    assert evidence(found) == {("SES-2", "draft")}


def test_created_wrong_agent_is_d() -> None:
    found = sessions.created(create_reply(session(agentId="agt_other")), AGENT_ID)
    assert rules(found) == {"SES-1"}
    assert levels(found, "SES-1") == {"D"}
    found = sessions.created(
        create_reply(session(agentId="agt_other", draftMode=True)), AGENT_ID, True, "SES-2"
    )
    assert rules(found) == {"SES-2"}
    assert levels(found, "SES-2") == {"D"}


@pytest.mark.parametrize(
    "ex",
    [create_reply(None), create_reply([session()])],
    ids=["data-null", "data-array"],
)
def test_created_data_not_a_session_is_ses1_c(ex: Exchange) -> None:
    found = sessions.created(ex, AGENT_ID)
    assert rules(found) == {"SES-1"}
    assert levels(found, "SES-1") == {"C"}


@pytest.mark.parametrize(
    "ex",
    [
        json_response(201, session(), method="POST", path="/chat/sessions"),
        exchange(201, b"created", content_type="text/plain", method="POST", path="/chat/sessions"),
    ],
    ids=["not-enveloped", "not-json"],
)
@pytest.mark.parametrize("draft", [False, True])
def test_created_without_the_envelope_is_not_judged(ex: Exchange, draft: bool) -> None:
    # ENV-1 (every_response) fails this response once; SES-1/SES-2 cannot read a session from it
    rule, clause = ("SES-2", "draft") if draft else ("SES-1", "all")
    found = sessions.created(ex, AGENT_ID, draft_mode=draft, rule=rule)
    assert found == []
    assert evidence(found) == set()  # the status alone is no evidence of a created session
    assert found.unexercised == {(rule, clause): "not judged: see ENV-1 on this response"}


def test_created_200_without_the_envelope_keeps_the_status_finding() -> None:
    ex = json_response(200, session(), method="POST", path="/chat/sessions")
    found = sessions.created(ex, AGENT_ID)
    assert rules(found) == {"SES-1"}
    assert levels(found, "SES-1") == {"C"}
    assert "201" in found[0].expected
    assert found.unexercised == {("SES-1", "all"): "not judged: see ENV-1 on this response"}


def test_created_draft_mode_defaults_to_false_else_ses2_c() -> None:
    found = sessions.created(create_reply(session(draftMode=True)), AGENT_ID)
    assert rules(found) == {"SES-2"}
    assert levels(found, "SES-2") == {"C"}
    assert [f.clause for f in found] == ["defaults-false"]


def test_created_draft_mode_not_applied_is_ses2_c() -> None:
    found = sessions.created(create_reply(session()), AGENT_ID, draft_mode=True, rule="SES-2")
    assert rules(found) == {"SES-2"}
    assert levels(found, "SES-2") == {"C"}


def test_created_draft_mode_missing_is_ses2_and_ses4() -> None:
    s = session()
    del s["draftMode"]
    assert rules(sessions.created(create_reply(s), AGENT_ID)) == {"SES-2", "SES-4"}


@pytest.mark.parametrize(
    "s",
    [
        session(status="ended", endedAt="2025-01-01T00:00:01Z"),
        session(endedAt="2025-01-01T00:00:01Z"),
    ],
    ids=["ended", "ended-at-set"],
)
def test_created_not_active_is_ses4(s: dict[str, Any]) -> None:
    found = sessions.created(create_reply(s), AGENT_ID)
    assert rules(found) == {"SES-4"}


def test_created_bad_shape_is_ses4() -> None:
    found = sessions.created(create_reply(session(createdAt="now")), AGENT_ID)
    assert rules(found) == {"SES-4"}
    assert levels(found, "SES-4") == {"C"}


# -- SES-4: same_session ---------------------------------------------------------------------


def test_same_session_correct_is_fine() -> None:
    found = sessions.same_session(enveloped(session()), session())
    assert found == []
    assert evidence(found) == {("SES-4", "all")}
    found = sessions.same_session(enveloped(session()), session(), rule="SES-5")
    assert evidence(found) == {("SES-4", "all"), ("SES-5", "all")}


def test_same_session_ended_is_still_the_same() -> None:
    ex = enveloped(session(status="ended", endedAt=ENDED_AT))
    assert sessions.same_session(ex, session(), rule="SES-5") == []


@pytest.mark.parametrize("status", [404, 403, 500, 201])
def test_same_session_not_200_is_a_finding(status: int) -> None:
    ex = problem_response(status) if status >= 400 else enveloped(session(), status=status)
    assert rules(sessions.same_session(ex, session())) == {"SES-4"}
    assert rules(sessions.same_session(ex, session(), rule="SES-5")) == {"SES-5"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("id", "ses_other"),
        ("agentId", "agt_other"),
        ("createdAt", "2025-01-01T00:00:01Z"),
        ("draftMode", True),
    ],
)
def test_same_session_different_is_a_finding(key: str, value: Any) -> None:
    ex = enveloped(session(**{key: value}))
    assert rules(sessions.same_session(ex, session())) == {"SES-4"}
    assert rules(sessions.same_session(ex, session(), rule="SES-5")) == {"SES-5"}


def test_same_session_data_missing_is_ses4() -> None:
    found = sessions.same_session(enveloped(None), session())
    assert rules(found) == {"SES-4"}
    assert evidence(found) == {("SES-4", "all")}


@pytest.mark.parametrize("rule", ["SES-4", "SES-5"])
def test_same_session_without_the_envelope_is_not_judged(rule: str) -> None:
    found = sessions.same_session(json_response(200, {"ok": 1}), session(), rule=rule)
    assert found == []
    assert evidence(found) == set()
    assert found.unexercised == {(rule, "all"): "not judged: see ENV-1 on this response"}


def test_same_session_bad_shape_is_ses4() -> None:
    assert rules(sessions.same_session(enveloped(session(status="x")), session())) == {"SES-4"}


# -- SES-5: ended ----------------------------------------------------------------------------


def end_reply(data: Any, status: int = 200) -> Exchange:
    return enveloped(data, status=status, method="POST", path=f"/chat/sessions/{SESSION_ID}/end")


def test_ended_correct_is_fine() -> None:
    ex = end_reply(session(status="ended", endedAt=ENDED_AT))
    found = sessions.ended(ex, SESSION_ID)
    assert found == []
    assert evidence(found) == {("SES-5", "all"), ("SES-4", "all")}


def test_ended_without_the_envelope_is_not_judged() -> None:
    ex = json_response(200, session(status="ended", endedAt=ENDED_AT), method="POST")
    found = sessions.ended(ex, SESSION_ID)
    assert found == []
    assert evidence(found) == set()
    assert found.unexercised == {("SES-5", "all"): "not judged: see ENV-1 on this response"}


def test_ended_no_response_is_ses5_without_evidence() -> None:
    found = sessions.ended(no_response(), SESSION_ID)
    assert rules(found) == {"SES-5"}
    assert evidence(found) == set()


def test_ended_again_with_the_same_ended_at_is_fine() -> None:
    ex = end_reply(session(status="ended", endedAt=ENDED_AT))
    assert sessions.ended(ex, SESSION_ID, ended_at=ENDED_AT) == []


def test_ended_again_with_another_ended_at_is_ses5() -> None:
    ex = end_reply(session(status="ended", endedAt="2025-01-01T00:06:00Z"))
    found = sessions.ended(ex, SESSION_ID, ended_at=ENDED_AT)
    assert rules(found) == {"SES-5"}
    assert levels(found, "SES-5") == {"C"}


@pytest.mark.parametrize(
    "ex",
    [
        problem_response(409, "session_ended", method="POST"),
        problem_response(404, method="POST"),
        end_reply(session(status="ended", endedAt=ENDED_AT), status=201),
        end_reply(None, status=204),
        no_response(),
    ],
    ids=["409", "404", "201", "204", "no-response"],
)
def test_ended_not_200_is_ses5(ex: Exchange) -> None:
    assert rules(sessions.ended(ex, SESSION_ID)) == {"SES-5"}


def test_ended_still_active_is_ses5() -> None:
    found = sessions.ended(end_reply(session()), SESSION_ID)
    assert rules(found) == {"SES-5"}


def test_ended_without_ended_at_is_ses5_and_ses4() -> None:
    found = sessions.ended(end_reply(session(status="ended")), SESSION_ID)
    assert rules(found) == {"SES-5", "SES-4"}


def test_ended_other_session_is_ses5() -> None:
    ex = end_reply(session(id="ses_other", status="ended", endedAt=ENDED_AT))
    assert rules(sessions.ended(ex, SESSION_ID)) == {"SES-5"}


def test_ended_data_not_a_session_is_ses4() -> None:
    assert rules(sessions.ended(end_reply(None), SESSION_ID)) == {"SES-4"}
