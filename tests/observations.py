"""Hand-built observations for the unit tests of the checks: Exchanges made without any network.

The checks are pure functions over recorded exchanges, so each test builds the exchange it needs:
a JSON (or enveloped) response, a problem+json response, a transport failure, or an event stream
made by feeding given raw bytes, in given reads, at given ``t_ns``, into a ``StreamRecord`` (the
same parser the client uses). The domain builders (sessions, messages, AuditEvents, completion
chunks) return plain dicts that are correct by default, so a test breaks exactly one thing.
"""

from __future__ import annotations

import importlib.util
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from chatconform.record import Exchange, StreamRecord

BASE_URL = "http://127.0.0.1:8080/api/v1"
SESSION_ID = "ses_1"
AGENT_ID = "agt_1"
MODEL = AGENT_ID
USER_ID = "msg_u1"
ASSISTANT_ID = "msg_a1"
USER_TEXT = "Hello"
DELTAS = ("Hi", " there", "!")
REPLY_TEXT = "".join(DELTAS)
CREATED_AT = "2025-01-01T00:00:00Z"
TS_MS = 1_735_689_600_000
READ_GAP_NS = 5_000_000  # 5 ms between reads unless a test says otherwise
SESSION_PATH = f"/chat/sessions/{SESSION_ID}"
MESSAGES_PATH = f"{SESSION_PATH}/messages"
COMPLETIONS_PATH = "/chat/completions"

Frame = tuple[str | None, Any]
"""One SSE frame to encode: its ``event:`` name (None: no event line) and its data."""


# -- plain responses -------------------------------------------------------------------------


def exchange(
    status: int | None,
    body: bytes = b"",
    *,
    content_type: str | None = None,
    method: str = "GET",
    path: str = SESSION_PATH,
    headers: dict[str, str] | None = None,
    request_body: Any = None,
    error: str | None = None,
) -> Exchange:
    """An exchange with the given status, raw body and headers (names lower-cased, as recorded)."""
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    if content_type is not None:
        hdrs["content-type"] = content_type
    req = None if request_body is None else json.dumps(request_body).encode()
    return Exchange(
        method,
        BASE_URL + path,
        {"Authorization": "Bearer flowyte_sk_test_unit"},
        req,
        status=status,
        headers=hdrs,
        body=body,
        error=error,
        t_start_ns=0,
        t_headers_ns=None if status is None else 1_000_000,
        t_end_ns=2_000_000,
    )


def json_response(
    status: int, body: Any, *, content_type: str = "application/json", **kw: Any
) -> Exchange:
    """A response whose body is ``body`` serialized as JSON."""
    return exchange(status, json.dumps(body).encode(), content_type=content_type, **kw)


def enveloped(data: Any, status: int = 200, **kw: Any) -> Exchange:
    """A session-API success: ``{"success": true, "data": data}``."""
    return json_response(status, {"success": True, "data": data}, **kw)


def problem_body(status: int, code: str = "session_not_found", **members: Any) -> dict[str, Any]:
    """A complete RFC 9457 problem object (ERR-1 fields); ``members`` override or add."""
    body: dict[str, Any] = {
        "type": f"https://docs.flowyte.com/errors/{code}",
        "title": "Problem",
        "status": status,
        "detail": f"A {code} problem.",
        "code": code,
    }
    body.update(members)
    return body


def problem_response(
    status: int,
    code: str = "session_not_found",
    *,
    content_type: str = "application/problem+json",
    headers: dict[str, str] | None = None,
    method: str = "GET",
    path: str = SESSION_PATH,
    **members: Any,
) -> Exchange:
    """A problem+json response; ``members`` override or add body members."""
    return json_response(
        status,
        problem_body(status, code, **members),
        content_type=content_type,
        headers=headers,
        method=method,
        path=path,
    )


def no_response(error: str = "connect error: connection refused") -> Exchange:
    """A request that got no response at all."""
    return exchange(None, error=error)


# -- sessions and messages -------------------------------------------------------------------


def session(**overrides: Any) -> dict[str, Any]:
    """A valid active Session."""
    s: dict[str, Any] = {
        "id": SESSION_ID,
        "agentId": AGENT_ID,
        "status": "active",
        "draftMode": False,
        "createdAt": CREATED_AT,
        "endedAt": None,
    }
    s.update(overrides)
    return s


def message(
    role: str, content: str, msg_id: str, *, created_at: str = CREATED_AT, **extra: Any
) -> dict[str, Any]:
    """A valid Message of the session."""
    m: dict[str, Any] = {
        "id": msg_id,
        "sessionId": SESSION_ID,
        "role": role,
        "content": content,
        "createdAt": created_at,
    }
    m.update(extra)
    return m


def turn_messages(
    content: str = USER_TEXT, reply: str = REPLY_TEXT, n: int = 1
) -> list[dict[str, Any]]:
    """One turn's assembled messages: the user's message, then one assistant reply."""
    suffix = "" if n == 1 else f"_{n}"
    stamp = f"2025-01-01T00:00:{2 * n - 2:02d}Z"
    stamp2 = f"2025-01-01T00:00:{2 * n - 1:02d}Z"
    return [
        message("user", content, USER_ID + suffix, created_at=stamp),
        message("assistant", reply, ASSISTANT_ID + suffix, created_at=stamp2),
    ]


def tool_turn(content: str = USER_TEXT) -> list[dict[str, Any]]:
    """A turn with a tool call: user, assistant(toolCalls), tool, final assistant."""
    call = {"id": "call_1", "name": "lookup", "arguments": {"q": "x"}}
    return [
        message("user", content, "msg_t1", created_at="2025-01-01T00:00:00Z"),
        message("assistant", "", "msg_t2", created_at="2025-01-01T00:00:01Z", toolCalls=[call]),
        message("tool", "42", "msg_t3", created_at="2025-01-01T00:00:02Z", toolCallId="call_1"),
        message("assistant", "It is 42.", "msg_t4", created_at="2025-01-01T00:00:03Z"),
    ]


# -- event streams ---------------------------------------------------------------------------


def sse_frame(data: Any, event: str | None = None, *, eol: str = "\n", space: bool = True) -> bytes:
    """One SSE frame: an optional ``event:`` line, one ``data:`` line per line of the data
    (JSON-serialized unless it is already a string), then a blank line."""
    text = data if isinstance(data, str) else json.dumps(data)
    sep = ": " if space else ":"
    lines = [] if event is None else [f"event{sep}{event}"]
    lines += [f"data{sep}{line}" for line in text.split("\n")]
    return (eol.join(lines) + eol + eol).encode()


def encode(frames: Iterable[Frame], *, eol: str = "\n", space: bool = True) -> list[bytes]:
    """Each frame encoded as bytes (one item per frame)."""
    return [sse_frame(data, event, eol=eol, space=space) for event, data in frames]


def split_every(raw: bytes, size: int) -> list[bytes]:
    """``raw`` cut into reads of ``size`` bytes (1: one byte per read)."""
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def stream_response(
    reads: Sequence[bytes],
    *,
    t_ns: Sequence[int] | None = None,
    status: int = 200,
    content_type: str = "text/event-stream",
    ended_by: str = "eof",
    method: str = "POST",
    path: str = MESSAGES_PATH,
    error: str | None = None,
) -> Exchange:
    """A streamed response: each item of ``reads`` fed to a StreamRecord as one read, at ``t_ns[i]``
    (default: every ``READ_GAP_NS``), then the stream closed as ``ended_by``."""
    ex = exchange(status, content_type=content_type, method=method, path=path, error=error)
    rec = StreamRecord()
    for i, chunk in enumerate(reads):
        rec.feed(chunk, t_ns[i] if t_ns is not None else (i + 1) * READ_GAP_NS)
    rec.close(ended_by)
    ex.stream = rec
    return ex


def audit_event(
    seq: int,
    event_type: str,
    payload: dict[str, Any],
    *,
    session_id: str = SESSION_ID,
    ts_ms: int | None = None,
    event_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A valid AuditEvent (SSE-3) numbered ``seq``."""
    ev: dict[str, Any] = {
        "id": event_id or f"evt_{seq}",
        "conversationId": session_id,
        "seq": seq,
        "tsMs": TS_MS + 10 * seq if ts_ms is None else ts_ms,
        "channel": "chat",
        "eventType": event_type,
        "payload": payload,
    }
    ev.update(extra)
    return ev


def delta(text: str, message_id: str = ASSISTANT_ID) -> dict[str, Any]:
    """An agent_message payload (SSE-4)."""
    return {"messageId": message_id, "delta": text}


def session_frames(
    deltas: Sequence[str] = DELTAS,
    messages: list[dict[str, Any]] | None = None,
    *,
    before_done: Sequence[tuple[str, dict[str, Any]]] = (),
) -> list[Frame]:
    """A correct streamed turn: agent_message frames for ``deltas`` (then any ``before_done``
    frames given as (event type, payload)), numbered seq 1..n, then ``done`` carrying the
    assembled messages plus the AuditEvent fields (as the reference server sends it)."""
    msgs = turn_messages(reply="".join(deltas)) if messages is None else messages
    body = [("agent_message", delta(d)) for d in deltas] + list(before_done)
    frames: list[Frame] = [(t, audit_event(i + 1, t, p)) for i, (t, p) in enumerate(body)]
    done = audit_event(len(frames) + 1, "done", {"messages": msgs}, messages=msgs)
    frames.append(("done", done))
    return frames


def session_stream(
    frames: Sequence[Frame] | None = None,
    *,
    eol: str = "\n",
    space: bool = True,
    **kw: Any,
) -> Exchange:
    """A streamed session turn, one frame per read (``session_frames()`` by default)."""
    return stream_response(
        encode(session_frames() if frames is None else frames, eol=eol, space=space), **kw
    )


# -- completions -----------------------------------------------------------------------------

CHUNK_ID = "chatcmpl-1"
CREATED = 1_735_689_600


def completion_body(content: str | None = REPLY_TEXT, **overrides: Any) -> dict[str, Any]:
    """A valid chat.completion object."""
    body: dict[str, Any] = {
        "id": CHUNK_ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
    }
    body.update(overrides)
    return body


def completion_chunk(
    content: str | None = None,
    *,
    role: str | None = None,
    finish_reason: str | None = None,
    chunk_id: str = CHUNK_ID,
    created: int = CREATED,
    model: str = MODEL,
) -> dict[str, Any]:
    """A valid chat.completion.chunk with one choice."""
    d: dict[str, Any] = {}
    if role is not None:
        d["role"] = role
    if content is not None:
        d["content"] = content
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": d, "finish_reason": finish_reason}],
    }


def completion_chunks(pieces: Sequence[str] = DELTAS) -> list[dict[str, Any]]:
    """Correct chunks: the first carries role assistant, the last (empty delta) finish "stop"."""
    out = [completion_chunk(p, role="assistant" if i == 0 else None) for i, p in enumerate(pieces)]
    out.append(completion_chunk(finish_reason="stop"))
    return out


def completion_stream(
    chunks: Sequence[Any] | None = None,
    *,
    done: bool = True,
    tail: Sequence[bytes] = (),
    **kw: Any,
) -> Exchange:
    """A streamed completion: one ``data: <chunk>`` frame per read, then ``data: [DONE]``
    (unless ``done`` is false), then the raw ``tail`` reads."""
    reads = [sse_frame(c) for c in (completion_chunks() if chunks is None else chunks)]
    if done:
        reads.append(b"data: [DONE]\n\n")
    reads += list(tail)
    kw.setdefault("path", COMPLETIONS_PATH)
    return stream_response(reads, **kw)


def evidence(outcome: Any) -> set[tuple[str, str]]:
    """The (rule, clause) pairs an Outcome says it examined (at least one observation each)."""
    return {key for key, n in outcome.examined.items() if n > 0}


def rules(findings: Iterable[Any]) -> set[str]:
    """The rule ids of some findings."""
    return {f.rule for f in findings}


def levels(findings: Iterable[Any], rule: str) -> set[str]:
    """The effective levels of the findings of one rule."""
    return {f.effective_level() for f in findings if f.rule == rule}


# -- suites over recorded observations -------------------------------------------------------

SUITES = Path(__file__).resolve().parents[1] / "suites"


def suite_module(name: str) -> ModuleType:
    """suites/test_<name>.py, imported under another name (its test functions are called directly)."""
    spec = importlib.util.spec_from_file_location(f"suite_{name}", SUITES / f"test_{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RecordedApi:
    """Stands in for the Client: each method hands back its recorded exchanges, in order, and
    remembers how it was called. A method with nothing recorded does not exist."""

    def __init__(self, **replies: list[Any]) -> None:
        self.replies = {k: list(v) for k, v in replies.items()}
        self.calls: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = defaultdict(list)

    def __getattr__(self, name: str) -> Any:
        if name not in self.replies:
            raise AttributeError(name)

        def call(*args: Any, **kw: Any) -> Any:
            self.calls[name].append((args, kw))
            return self.replies[name].pop(0)

        return call
