"""Plain-text renderings of a finding's evidence (request, response, SSE wire log), shared by the
Allure attachments and the HTML summary. The evidence is already redacted by value."""

from __future__ import annotations

from typing import Any


def _headers(headers: dict[str, Any] | None) -> list[str]:
    return [f"{k}: {v}" for k, v in (headers or {}).items()]


def request_response_text(ev: dict[str, Any]) -> str:
    """The exchange as an HTTP-like transcript: request line, headers, body; status, headers, body."""
    req = ev.get("request") or {}
    lines = [f"{req.get('method', '?')} {req.get('url', '?')}", *_headers(req.get("headers"))]
    body = req.get("body")
    if body:
        lines += ["", str(body)]
    lines.append("")
    elapsed = ev.get("elapsedMs")
    took = f"  ({elapsed:.1f} ms)" if isinstance(elapsed, int | float) else ""
    resp = ev.get("response")
    if resp is None:
        lines.append(f"<no response>{took}: {ev.get('error') or 'unknown error'}")
        return "\n".join(lines)
    lines.append(f"HTTP {resp.get('status')}{took}")
    lines += _headers(resp.get("headers"))
    if ev.get("stream") is None and resp.get("body"):
        lines += ["", str(resp.get("body"))]
    elif ev.get("stream") is not None:
        lines += ["", "(event stream: see the SSE wire log)"]
    if ev.get("error"):
        lines += ["", f"error: {ev['error']}"]
    return "\n".join(lines)


def stream_frames(ev: dict[str, Any]) -> list[dict[str, Any]]:
    stream = ev.get("stream") or {}
    return list(stream.get("events") or [])


def sse_wire_text(ev: dict[str, Any]) -> str | None:
    """Each dispatched frame with its arrival time (ms after the request was sent), then the raw wire."""
    stream = ev.get("stream")
    if stream is None:
        return None
    out = [
        f"stream ended by: {stream.get('endedBy')}",
        f"frames dispatched: {len(stream.get('events') or [])}",
    ]
    violations = stream.get("violations") or []
    if violations:
        out.append("parser violations:")
        out += [f"  - {v}" for v in violations]
    out += ["", "  arrival ms   read#  event            data"]
    for e in stream.get("events") or []:
        at = e.get("atMs")
        at_s = f"{at:10.3f}" if isinstance(at, int | float) else f"{'?':>10}"
        out.append(f"{at_s}  {e.get('read', '?')!s:>5}  {e.get('event')!s:16} {e.get('data')}")
    wire = stream.get("wire")
    if wire:
        out += ["", "---- raw wire (as received, redacted) ----", str(wire)]
    return "\n".join(out)


def evidence_key(ev: dict[str, Any] | None) -> str:
    """Identity of the exchange behind a finding (several findings often share one)."""
    if not ev:
        return ""
    req = ev.get("request") or {}
    resp = ev.get("response") or {}
    return f"{req.get('method')} {req.get('url')} {resp.get('status')} {ev.get('elapsedMs')}"
