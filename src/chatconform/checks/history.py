"""MSG-1..7: turns, messages and the reconstructed history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from chatconform.checks.common import (
    basic_failure,
    data_of,
    expect_status,
    finding,
    key_of,
    schema_findings,
    short,
)
from chatconform.record import Exchange
from chatconform.verdicts import Finding, Outcome


def message_shapes(messages: list[Any], session_id: str, ex: Exchange | None) -> Outcome:
    """MSG-3: each message's shape, its sessionId, and tool-call links."""
    out = Outcome()
    for i, m in enumerate(messages):
        out += schema_findings(m, "Message", "MSG-3", ex, f"messages[{i}]", None)
        if isinstance(m, dict) and m.get("sessionId") != session_id:
            got = f"messages[{i}].sessionId {m.get('sessionId')!r}"
            out.append(finding("MSG-3", f"sessionId {session_id!r}", got, ex))
        if isinstance(m, dict) and m.get("role") == "tool" and not m.get("toolCallId"):
            out.append(finding("MSG-3", "a tool message with toolCallId", short(m), ex))
    del out[5:]
    return out


def turn(ex: Exchange, content: str, session_id: str) -> tuple[Outcome, list[dict[str, Any]]]:
    """MSG-2: stream:false gives 200 data.messages: the user's message, ..., one assistant last."""
    out = expect_status(ex, "MSG-2", 200)
    if out:
        return out, []
    basic = basic_failure(ex)
    if basic is not None:
        return Outcome().not_exercised("MSG-2", None, f"not judged: see {basic}"), []
    data = data_of(ex)
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list) or not messages:
        out.add(finding("MSG-2", "data.messages, a non-empty array", short(data), ex, "C"))
        return out, []
    out += assembled(messages, content, session_id, ex, "MSG-2")
    return out, [m for m in messages if isinstance(m, dict)]


def assembled(
    messages: list[Any], content: str, session_id: str, ex: Exchange | None, rule: str
) -> Outcome:
    """A turn's assembled messages: user message with the content first, one assistant last."""
    out = message_shapes(messages, session_id, ex)
    first, last = messages[0], messages[-1]
    if not (
        isinstance(first, dict) and first.get("role") == "user" and first.get("content") == content
    ):
        out.append(finding(rule, "the user's message first, with its content", short(first), ex))
    if not (isinstance(last, dict) and last.get("role") == "assistant"):
        out.append(finding(rule, "an assistant message last", short(last), ex))
    middle_users = [m for m in messages[1:] if isinstance(m, dict) and m.get("role") == "user"]
    if middle_users:
        out.append(finding(rule, "one user message per turn", short(middle_users[0]), ex))
    assistants = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    if assistants and not all(isinstance(a.get("content"), str) for a in assistants):
        out.append(finding(rule, "assistant content strings", short(assistants), ex))
    return out


def page(ex: Exchange, limit: int | None) -> tuple[Outcome, list[dict[str, Any]], Any]:
    """MSG-4: one page: 200, data array, pagination {nextCursor, limit}, at most `limit` items."""
    out = expect_status(ex, "MSG-4", 200)
    if out:
        return out, [], None
    basic = basic_failure(ex)
    if basic is not None:
        return Outcome().not_exercised("MSG-4", None, f"not judged: see {basic}"), [], None
    body = ex.json()
    data = data_of(ex)
    if not isinstance(data, list):
        out.add(finding("MSG-4", "data to be the array of messages", short(body), ex, "C"))
        return out, [], None
    pag = body.get("pagination") if isinstance(body, dict) else None
    cursor = None
    if (
        not isinstance(pag, dict)
        or "nextCursor" not in pag
        or not isinstance(pag.get("limit"), int)
    ):
        out.append(finding("MSG-4", "pagination {nextCursor, limit}", short(pag), ex, "C"))
    else:
        cursor = pag["nextCursor"]
        want = 50 if limit is None else limit
        if pag["limit"] != want:
            out.append(finding("MSG-4", f"pagination.limit {want}", f"{pag['limit']}", ex, "C"))
        if cursor is not None and not isinstance(cursor, str):
            out.append(finding("MSG-4", "nextCursor a string or null", short(cursor), ex, "C"))
    want_max = 50 if limit is None else limit
    if len(data) > want_max:
        out.append(finding("MSG-4", f"at most {want_max} messages", f"{len(data)}", ex, "C"))
    return out, [m for m in data if isinstance(m, dict)], cursor


def ordered_once(history: list[dict[str, Any]], ex: Exchange | None) -> Outcome:
    """MSG-4: oldest first, every message exactly once."""
    out = Outcome().saw("MSG-4")
    ids = [key_of(m.get("id")) for m in history]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        got = f"{len(dupes)} id(s) repeated, e.g. {dupes[0]}"
        out.append(finding("MSG-4", "every message exactly once", got, ex, "C"))
    stamps = [parse_time(m.get("createdAt")) for m in history]
    for i in range(1, len(stamps)):
        a, b = stamps[i - 1], stamps[i]
        if a is not None and b is not None and b < a:
            got = (
                f"messages[{i}] createdAt {history[i].get('createdAt')} before "
                f"messages[{i - 1}] {history[i - 1].get('createdAt')}"
            )
            out.append(finding("MSG-4", "oldest first", got, ex, "C"))
            break
    return out


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 date-time as an aware datetime (None when it is not one: MSG-3 says so)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def same_transcript(
    history: list[dict[str, Any]], turns: list[dict[str, Any]], ex: Exchange | None
) -> Outcome:
    """MSG-5: the history equals what the turns returned: same ids, roles, content, order."""

    def key(m: dict[str, Any]) -> tuple[Any, Any, Any]:
        return (m.get("id"), m.get("role"), m.get("content"))

    out = Outcome().saw("MSG-5")
    got, want = [key(m) for m in history], [key(m) for m in turns]
    if got == want:
        return out
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return out.add(
                finding(
                    "MSG-5",
                    f"history[{i}] = {short(w, 150)} (what the turn returned)",
                    f"{short(g, 150)}",
                    ex,
                )
            )
    return out.add(
        finding(
            "MSG-5",
            f"{len(want)} messages, as the turns returned",
            f"{len(got)} messages in history",
            ex,
        )
    )


def well_formed(
    history: list[dict[str, Any]], rule: str, ex: Exchange | None, allow_absent_reply: bool
) -> Outcome:
    """MSG-6/MSG-7: each user message is followed by its complete reply (or, if allowed, none)."""
    out = Outcome().saw(rule)
    return out.add(*_malformed(history, rule, ex, allow_absent_reply))


def _malformed(
    history: list[dict[str, Any]], rule: str, ex: Exchange | None, allow_absent_reply: bool
) -> list[Finding]:
    ids = [key_of(m.get("id")) for m in history]
    if len(set(ids)) != len(ids):
        return [finding(rule, "no duplicated message", f"ids {ids}", ex)]
    turns: list[list[dict[str, Any]]] = []
    for m in history:
        if m.get("role") == "user" or not turns:
            turns.append([m])
        else:
            turns[-1].append(m)
    for n, t in enumerate(turns):
        roles = [m.get("role") for m in t]
        if roles[0] != "user":
            return [finding(rule, "the history to start with a user message", f"{roles}", ex)]
        if len(t) == 1:
            if allow_absent_reply:
                continue
            return [finding(rule, f"turn {n + 1} to have its reply", "no reply", ex)]
        if roles[-1] != "assistant":
            got = f"turn {n + 1} roles {roles}"
            return [finding(rule, "each reply complete, ending with an assistant message", got, ex)]
        if roles.count("assistant") - sum(1 for m in t if m.get("toolCalls")) != 1:
            got = f"turn {n + 1} roles {roles}"
            return [finding(rule, "exactly one final assistant message per turn", got, ex)]
    return []
