"""SES-1..7: the session lifecycle."""

from __future__ import annotations

from typing import Any

from chatconform.checks.common import (
    basic_failure,
    data_of,
    expect_status,
    finding,
    schema_findings,
    short,
)
from chatconform.record import Exchange
from chatconform.verdicts import Outcome


def session_shape(obj: Any, ex: Exchange | None, where: str = "data") -> Outcome:
    """SES-4: id, agentId, status, draftMode, createdAt, endedAt with their types."""
    return schema_findings(obj, "Session", "SES-4", ex, where, None)


def created(ex: Exchange, agent_id: str, draft_mode: bool = False, rule: str = "SES-1") -> Outcome:
    """SES-1 (SES-2 for a draft session): 201 with an active Session tied to the agent."""
    clause = "draft" if rule == "SES-2" else None
    out = Outcome()
    if ex.status is not None:
        out.saw(rule, clause)
    if ex.status is None or not 200 <= ex.status < 300:
        return out.add(finding(rule, "a 2xx creating the session", ex.describe(), ex, "D", clause))
    if ex.status != 201:
        out.add(finding("SES-1", "HTTP 201 Created", f"HTTP {ex.status}", ex, "C")).saw("SES-1")
    basic = basic_failure(ex)
    if basic is not None:
        return Outcome(out).not_exercised(rule, clause, f"not judged: see {basic} on this response")
    data = data_of(ex)
    if not isinstance(data, dict):
        return out.add(finding("SES-1", "data to be a Session", short(ex.json()), ex, "C"))
    out += session_shape(data, ex)
    if data.get("agentId") != agent_id:
        got = f"{data.get('agentId')!r}"
        out.add(finding(rule, f"agentId {agent_id!r}", got, ex, "D", clause))
    if data.get("status") != "active" or data.get("endedAt") is not None:
        out.append(
            finding(
                "SES-4",
                'a new session with status "active" and endedAt null',
                f"status {data.get('status')!r}, endedAt {data.get('endedAt')!r}",
                ex,
            )
        )
    mode_clause = "draft" if draft_mode else "defaults-false"
    out.saw("SES-2", mode_clause, n=int(mode_clause != clause))  # a draft create: counted above
    if data.get("draftMode") is not draft_mode:
        got = f"{data.get('draftMode')!r}"
        out.add(finding("SES-2", f"draftMode {draft_mode}", got, ex, "C", mode_clause))
    return out


def same_session(ex: Exchange, expected: dict[str, Any], rule: str = "SES-4") -> Outcome:
    """GET returns 200 and the same Session (id, agentId, createdAt, ...)."""
    out = expect_status(ex, rule, 200)
    if out:
        return out
    basic = basic_failure(ex)
    if basic is not None:
        return Outcome().not_exercised(rule, None, f"not judged: see {basic} on this response")
    data = data_of(ex)
    out += session_shape(data, ex)
    if not isinstance(data, dict):
        return out
    for key in ("id", "agentId", "createdAt", "draftMode"):
        if data.get(key) != expected.get(key):
            out.append(
                finding(rule, f"{key} {expected.get(key)!r}", f"{key} {data.get(key)!r}", ex)
            )
    return out


def ended(ex: Exchange, session_id: str, ended_at: str | None = None) -> Outcome:
    """SES-5: 200 with the Session, status ended, endedAt set (the same one when ended again)."""
    out = expect_status(ex, "SES-5", 200)
    if out:
        return out
    basic = basic_failure(ex)
    if basic is not None:
        return Outcome().not_exercised("SES-5", None, f"not judged: see {basic} on this response")
    data = data_of(ex)
    out += session_shape(data, ex)
    if not isinstance(data, dict):
        return out
    if data.get("id") != session_id:
        out.append(finding("SES-5", f"id {session_id!r}", f"{data.get('id')!r}", ex))
    if data.get("status") != "ended" or not data.get("endedAt"):
        out.append(
            finding(
                "SES-5",
                'status "ended" and endedAt set',
                f"status {data.get('status')!r}, endedAt {data.get('endedAt')!r}",
                ex,
            )
        )
    elif ended_at is not None and data.get("endedAt") != ended_at:
        out.append(
            finding(
                "SES-5",
                f"the same endedAt {ended_at!r} when ended again",
                f"{data.get('endedAt')!r}",
                ex,
            )
        )
    return out
