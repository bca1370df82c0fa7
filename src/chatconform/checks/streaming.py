"""SSE-1..8 (and MSG-5's delta rule): a streamed reply of the session API."""

from __future__ import annotations

from typing import Any

from chatconform.checks.common import finding, key_of, schema_errors, schema_findings, short
from chatconform.checks.history import assembled
from chatconform.checks.timing import gaps_text
from chatconform.record import Exchange
from chatconform.sse import Event
from chatconform.verdicts import Outcome, judged

TERMINAL = ("done", "error")


def frames(ex: Exchange) -> list[tuple[Event, Any]]:
    """The stream's dispatched events with their data parsed as JSON (None when not JSON)."""
    assert ex.stream is not None
    return list(zip(ex.stream.events, ex.stream.parsed(), strict=True))


def is_stream(ex: Exchange) -> Outcome:
    """SSE-1: 200 with Content-Type text/event-stream (nothing examined when nothing came back)."""
    if ex.status is None:
        return Outcome()  # no response: the transport failure is reported by the caller's rule
    if ex.status == 200 and ex.media_type == "text/event-stream" and ex.stream is not None:
        return judged([], "SSE-1")
    want = "HTTP 200 with Content-Type text/event-stream"
    return judged([finding("SSE-1", want, ex.describe(), ex)], "SSE-1")


def session_stream(ex: Exchange, session_id: str, content: str) -> Outcome:
    """Every rule that one streamed reply can break, SSE-1 to SSE-7 and MSG-5 (deltas)."""
    out = is_stream(ex)
    if out or ex.stream is None:
        if ex.status is None and ex.error:
            want = "a streamed reply"
            out.add(finding("SSE-5", want, ex.describe(), ex))
            out.saw("SSE-5")
        return out
    fs = frames(ex)
    out += wire(ex)
    out += termination(ex, fs)
    body = [(e, d) for e, d in fs if e.type not in TERMINAL]
    out += audit_events(ex, body, session_id)
    out += payloads(ex, body)
    out += order(ex, fs, session_id)
    out += terminal_data(ex, fs, session_id, content)
    return out


def wire(ex: Exchange) -> Outcome:
    """SSE-2: valid UTF-8 event stream; the last frame ends with a blank line."""
    assert ex.stream is not None
    p = ex.stream.parser
    out = Outcome().saw("SSE-2")
    for v in p.violations:
        if "UTF-8" in v:
            out.append(finding("SSE-2", "a UTF-8 event stream", v, ex, "D"))
            break
    if p.unterminated:
        got = f"a final frame without its blank line (data {short(p.pending_data or '', 120)!r})"
        out.append(finding("SSE-2", "every frame to end with a blank line", got, ex, "C"))
    return out


def pending_terminal(ex: Exchange) -> bool:
    """The stream ended inside a frame that names a terminal event (SSE-2's missing blank line)."""
    assert ex.stream is not None
    p = ex.stream.parser
    return bool(p.unterminated and p.pending_type in TERMINAL)


def termination(ex: Exchange, fs: list[tuple[Event, Any]]) -> Outcome:
    """SSE-5: exactly one done/error frame, last, then the server closes the response."""
    assert ex.stream is not None
    terminals = [i for i, (e, _) in enumerate(fs) if e.type in TERMINAL]
    names = [e.type for e, _ in fs]
    tail = ", ".join(names[-4:]) or "no events"
    if not terminals and pending_terminal(ex):
        # the terminal frame came but lacks its blank line: SSE-2's failure, not a second one here
        why = "not judged: see SSE-2 on this response (the final frame was not terminated)"
        return Outcome().not_exercised("SSE-5", None, why)
    out = Outcome().saw("SSE-5")
    if not terminals:
        got = (
            f"{len(fs)} events and no terminal frame (last: {tail}; ended by {ex.stream.ended_by})"
        )
        if ex.error:
            got += f"; {ex.error}"
        return out.add(
            finding("SSE-5", "the stream to end with one event: done or event: error", got, ex)
        )
    if len(terminals) > 1:
        got = f"{len(terminals)} terminal frames ({', '.join(names[i] for i in terminals)})"
        out.append(finding("SSE-5", "exactly one terminal frame", got, ex))
    if terminals[0] != len(fs) - 1:
        after = names[terminals[0] + 1 :]
        got = f"{len(after)} frame(s) after {names[terminals[0]]}: {', '.join(after[:4])}"
        out.append(finding("SSE-5", "nothing after the terminal frame", got, ex))
    elif ex.stream.parser.unterminated and ex.stream.parser.pending_data:
        got = "a partial frame after the terminal frame"
        out.append(finding("SSE-5", "nothing after the terminal frame", got, ex))
    if ex.stream.ended_by not in ("eof", "client-drop"):
        got = f"the response still open ({ex.stream.ended_by}: {ex.error})"
        out.append(finding("SSE-5", "the server to close the response after it", got, ex))
    return out


def audit_events(ex: Exchange, body: list[tuple[Event, Any]], session_id: str) -> Outcome:
    """SSE-3: each non-terminal frame names its event type and carries an AuditEvent."""
    out = Outcome().saw("SSE-3", n=len(body))
    for n, (e, data) in enumerate(body):
        where = f"frame {n + 1} (event: {e.type})"
        if not e.event_field:
            out.append(finding("SSE-3", f"{where}: an event: line", "no event: field", ex))
        elif data is None:
            got = f"{where}: data {short(e.data, 120)!r}"
            out.append(finding("SSE-3", "data to be an AuditEvent JSON object", got, ex))
        else:
            out.add(*schema_errors(data, "AuditEvent", "SSE-3", ex, where, "D"))  # counted above
            if isinstance(data, dict) and data.get("eventType") != e.type:
                got = f"{where}: eventType {data.get('eventType')!r}"
                out.append(finding("SSE-3", f"eventType equal to event: {e.type}", got, ex))
        if len(out) >= 3:
            break
    return out


PAYLOAD_SCHEMA = {
    "agent_message": "AgentMessagePayload",
    "tool_call": "ToolCallPayload",
    "kb_retrieval": "KbRetrievalPayload",
}
PAYLOAD_CLAUSE = {
    "agent_message": "delta",
    "tool_call": "tool_call",
    "kb_retrieval": "kb_retrieval",
}


def payloads(ex: Exchange, body: list[tuple[Event, Any]]) -> Outcome:
    """SSE-4: agent_message, tool_call and kb_retrieval payloads; other types tolerated."""
    out = Outcome()
    failed: set[str] = set()
    for n, (e, data) in enumerate(body):
        clause = PAYLOAD_CLAUSE.get(e.type)
        if clause is None or not isinstance(data, dict):
            continue  # other event types are tolerated; a frame that is not an AuditEvent is SSE-3's
        out.saw("SSE-4", clause)
        if clause in failed:
            continue  # one finding per clause and stream
        where = f"frame {n + 1} ({e.type}) payload"
        found = schema_findings(
            data.get("payload"), PAYLOAD_SCHEMA[e.type], "SSE-4", ex, where, "C"
        )
        for f in found:
            f.clause = clause
            failed.add(clause)
        out += found
    return out


def order(ex: Exchange, fs: list[tuple[Event, Any]], session_id: str) -> Outcome:
    """SSE-7: seq 1, 2, 3 ...; tsMs never decreases; conversationId the session; ids unique."""
    out = Outcome()
    expected_seq = 1
    last_ts: int | None = None
    seen_ids: set[str] = set()
    for n, (e, data) in enumerate(fs):
        if not isinstance(data, dict) or (e.type in TERMINAL and "seq" not in data):
            continue
        where = f"frame {n + 1} (event: {e.type})"
        out.saw("SSE-7")
        seq = data.get("seq")
        if seq != expected_seq:
            out.append(finding("SSE-7", f"{where}: seq {expected_seq}", f"seq {seq!r}", ex))
            break
        expected_seq += 1
        ts = data.get("tsMs")
        if isinstance(ts, int) and last_ts is not None and ts < last_ts:
            out.append(finding("SSE-7", f"{where}: tsMs ≥ {last_ts}", f"tsMs {ts}", ex))
            break
        last_ts = ts if isinstance(ts, int) else last_ts
        if "conversationId" in data and data["conversationId"] != session_id:
            got = f"conversationId {data['conversationId']!r}"
            out.append(finding("SSE-7", f"{where}: conversationId {session_id!r}", got, ex))
            break
        fid = key_of(data.get("id"))
        if fid in seen_ids:
            out.append(finding("SSE-7", f"{where}: a unique id", f"id {fid} repeated", ex))
            break
        seen_ids.add(fid)
    return out


def terminal_data(
    ex: Exchange, fs: list[tuple[Event, Any]], session_id: str, content: str
) -> Outcome:
    """SSE-6: done carries the assembled messages; error a problem. MSG-5: deltas = content."""
    terminal = next(((e, d) for e, d in fs if e.type in TERMINAL), None)
    if terminal is None:
        return Outcome()
    e, data = terminal
    if e.type == "error":
        return error_frame(ex, e, data)
    out = Outcome().saw("SSE-6", "done")
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list) or not messages:
        want = 'done data: {"messages": [Message, …]}'
        return out.add(finding("SSE-6", want, short(e.data), ex, clause="done"))
    part = assembled(messages, content, session_id, ex, "SSE-6")  # MSG-3's evidence kept too
    for f in part:
        if f.rule == "SSE-6":
            f.clause = "done"
    out += part
    out += deltas_match(ex, fs, messages)
    return out


def error_frame(ex: Exchange, e: Event, data: Any) -> Outcome:
    """SSE-6 (error): an error frame's data is a problem object (ERR-1's fields, status ≥ 400)."""
    out = Outcome().saw("SSE-6", "error")
    status = data.get("status") if isinstance(data, dict) else None
    fields_ok = isinstance(data, dict) and all(
        isinstance(data.get(k), str) and data.get(k) for k in ("title", "detail", "code")
    )
    if not (isinstance(status, int) and 400 <= status <= 599 and fields_ok):
        want = "error data: a problem object (status ≥ 400, title, detail, code)"
        out.add(finding("SSE-6", want, short(e.data), ex, clause="error"))
    return out


def deltas_match(ex: Exchange, fs: list[tuple[Event, Any]], messages: list[Any]) -> Outcome:
    """MSG-5: a streamed reply's text equals its concatenated agent_message deltas."""
    texts: dict[str, list[str]] = {}
    end = next((i for i, (e, _) in enumerate(fs) if e.type in TERMINAL), len(fs))
    for e, data in fs[:end]:  # a delta after the terminal frame is SSE-5's failure, not this rule's
        if is_delta(e, data) and isinstance(data, dict):
            p = data.get("payload")
            if isinstance(p, dict) and isinstance(p.get("delta"), str):
                texts.setdefault(key_of(p.get("messageId")), []).append(p["delta"])
    final = messages[-1] if isinstance(messages[-1], dict) else {}
    streamed = "".join(texts.get(key_of(final.get("id")), []))
    out = Outcome().saw("MSG-5")
    if streamed != final.get("content"):
        return out.add(
            finding(
                "MSG-5",
                f"the deltas of message {final.get('id')!r} to concatenate to its content "
                f"{short(final.get('content'), 120)!r}",
                f"{short(streamed, 120)!r} from {len(texts.get(key_of(final.get('id')), []))} deltas",
                ex,
            )
        )
    return out


def is_delta(e: Event, data: Any) -> bool:
    """An agent_message frame, by its event name or, where that is wrong (SSE-3), by eventType."""
    named = isinstance(data, dict) and data.get("eventType") == "agent_message"
    return e.type == "agent_message" or named


def content_deltas(ex: Exchange) -> list[Event]:
    return [e for e, data in frames(ex) if is_delta(e, data)]


def flushed(ex: Exchange, min_spread_ms: float = 1.0) -> Outcome:
    """SSE-8: deltas arrive as produced: over several reads, spread in time, not in one burst.
    A finding says the timing seen (the gaps between deltas); for a pass, timing.flush_timing."""
    found = is_stream(ex)
    if found or ex.stream is None:
        return Outcome(found)  # SSE-1's finding; nothing about flushing was examined
    deltas = content_deltas(ex)
    if len(deltas) < 2:
        why = f"a reply of {len(deltas)} delta(s) cannot show flushing (at least 2 needed)"
        return Outcome().not_exercised("SSE-8", None, why)
    out = Outcome().saw("SSE-8")
    spread_ms = (deltas[-1].t_ns - deltas[0].t_ns) / 1e6
    reads = len({e.read_index for e in deltas})
    if reads < 2 or spread_ms < min_spread_ms:
        got = (
            f"all {len(deltas)} deltas arrived within {spread_ms:.3f} ms in {reads} read(s) "
            f"({gaps_text(deltas)})"
        )
        out.add(finding("SSE-8", "the first delta before the last one is generated", got, ex))
    return out
