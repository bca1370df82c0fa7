"""Observations: what one request and its response looked like on the wire, with timings.

An Exchange is filled in by the client (or by the load users) and read by the checks. For a stream
the events come from the project's one SSE parser, fed as bytes arrive, each stamped with its arrival
time on the monotonic clock, so a latency figure and a verdict come from the same parse.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatconform.sse import Event, SSEParser

if TYPE_CHECKING:
    from chatconform.target import Target

_MISSING = object()
WIRE_LOG_BYTES = 64 * 1024  # raw stream bytes kept for evidence


@dataclass(slots=True)
class StreamRecord:
    """A parsed event stream: dispatched events, parser findings and how the stream ended."""

    parser: SSEParser = field(default_factory=SSEParser)
    events: list[Event] = field(default_factory=list)
    wire: bytearray = field(default_factory=bytearray)
    ended_by: str = "open"  # eof | client-drop | timeout | byte-cap | transport-error
    json_data: list[Any] = field(default_factory=list, repr=False, compare=False)  # see parsed()

    def parsed(self) -> list[Any]:
        """Each event's data as JSON (None when it is not JSON), parsed once per event and shared
        by every check and measurement that reads the stream."""
        cache = self.json_data
        for e in self.events[len(cache) :]:
            try:
                cache.append(json.loads(e.data))
            except ValueError:
                cache.append(None)
        return cache

    def feed(self, chunk: bytes, t_ns: int) -> list[Event]:
        if len(self.wire) < WIRE_LOG_BYTES:
            self.wire += chunk[: WIRE_LOG_BYTES - len(self.wire)]
        new = self.parser.feed(chunk, t_ns)
        self.events.extend(new)
        return new

    def close(self, ended_by: str) -> None:
        self.ended_by = ended_by
        self.events.extend(self.parser.close())

    @property
    def reads(self) -> int:
        return self.parser.reads


@dataclass(slots=True)
class Exchange:
    """One request and what came back (or why nothing did)."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""
    stream: StreamRecord | None = None
    error: str | None = None  # transport failure, timeout or cap, said plainly
    timed_out: bool = False  # no byte in time, or the exchange outlived its deadline
    over_cap: bool = False  # the body or stream outgrew the byte cap
    not_sent: bool = False  # the run's budget (deadline, breaker, agent cap) refused to send it
    limit: str | None = None  # the limit the user chose that kept it unsent (--max-agent-calls)
    agent_claim: bool = False  # it held one of the run's agent calls while in flight
    abandoned: str | None = None  # why the run cut it short (its streams are known not to end)
    t_start_ns: int = field(default_factory=time.perf_counter_ns)
    t_headers_ns: int | None = None
    t_end_ns: int | None = None
    # the load path's reader: its largest (read returned − bytes arrived, per the kernel), ns
    read_lag_ns: int | None = None
    _json: Any = field(default=_MISSING, repr=False)

    @property
    def unjudged(self) -> bool:
        """Not sent, or cut short by the run: it proves nothing about the target (ERROR)."""
        return self.not_sent or self.abandoned is not None

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON (checks report that themselves)."""
        if self._json is _MISSING:
            try:
                self._json = json.loads(self.body) if self.body else None
            except ValueError:
                self._json = None
        return self._json

    @property
    def elapsed_ms(self) -> float | None:
        if self.t_end_ns is None:
            return None
        return (self.t_end_ns - self.t_start_ns) / 1e6

    def describe(self) -> str:
        """A short description for a finding: status, content type and a body excerpt."""
        if self.status is None:
            return f"no response ({self.error})"
        text = f"{self.status} {self.headers.get('content-type', '(no content-type)')}"
        if self.stream is not None:
            text += f", {len(self.stream.events)} events, stream ended by {self.stream.ended_by}"
            violations = self.stream.parser.violations
            if violations:
                text += f"; {violations[0]}"
                if len(violations) > 1:
                    text += f" (+{len(violations) - 1} more)"
        elif self.body:
            text += f", body {excerpt(self.body)}"
        if self.error:
            text += f" ({self.error})"
        return text

    def curl(self, target: Target | None = None) -> str:
        parts = ["curl", "-sS", "-N" if self.stream is not None else "-i", "-X", self.method]
        parts.append(shlex.quote(self.url))
        for name, value in self.request_headers.items():
            parts += ["-H", shlex.quote(f"{name}: {value}")]
        if self.request_body is not None:
            parts += ["--data-binary", shlex.quote(self.request_body.decode("utf-8", "replace"))]
        line = " ".join(parts)
        if target is not None:
            # name the secret's variable instead of printing it; "$X" stays literal in single quotes,
            # so switch those pieces to double quotes where a secret was replaced
            for env, value in target.secrets().items():
                if value in line:
                    line = line.replace(value, "'\"$" + env + "\"'")
        return line

    def evidence(self, target: Target | None = None) -> dict[str, Any]:
        redact = target.redact if target is not None else (lambda s: s)
        ev: dict[str, Any] = {
            "request": {
                "method": self.method,
                "url": redact(self.url),
                "headers": {k: redact(v) for k, v in self.request_headers.items()},
                "body": redact(excerpt(self.request_body or b"", 2000)),
            },
            "response": None
            if self.status is None
            else {
                "status": self.status,
                "headers": {k: redact(v) for k, v in self.headers.items()},
                "body": redact(excerpt(self.body, 4000)),
            },
            "error": self.error,
            "elapsedMs": self.elapsed_ms,
        }
        if self.stream is not None:
            ev["stream"] = {
                "endedBy": self.stream.ended_by,
                "events": [
                    {
                        "atMs": round((e.t_ns - self.t_start_ns) / 1e6, 3),
                        "read": e.read_index,
                        "event": e.type,
                        "data": redact(e.data[:500]),
                    }
                    for e in self.stream.events[:200]
                ],
                "violations": self.stream.parser.violations[:20],
                "wire": redact(bytes(self.stream.wire[:8000]).decode("utf-8", "replace")),
            }
        return ev


def excerpt(body: bytes, limit: int = 300) -> str:
    text = body[:limit].decode("utf-8", "replace")
    return text + (f"… ({len(body)} bytes)" if len(body) > limit else "")
