"""One request's timeline on ``time.perf_counter_ns()``, and how a stream's events advance it.

A :class:`Timeline` is filled in while a streamed request runs: intended start, sent, headers,
first event, first content delta, each content delta, terminal frame, close. The events come
from the project's one SSE parser (through :class:`chatconform.record.StreamRecord`), fed each
network read as it arrives and stamped with that read's time, so several deltas that arrive in
one read share one timestamp (their gaps are 0, which is what the client saw).

``to_sample()`` turns it into a plain JSON-able dict (milliseconds relative to the intended
start, microsecond resolution): the one representation that workers send to the master, that
the per-request JSONL stores and that the metrics read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from chatconform.sse import Event

# how an event advances a timeline
OTHER, CONTENT, DONE, ERROR = 0, 1, 2, 3

# outcomes: "ok" is measured; the others are counted apart and never enter latency
OK = "ok"
HTTP_ERROR = "http_error"  # a status other than 200, or not text/event-stream
TRANSPORT_ERROR = "transport_error"  # no response: refused, reset, timeout before headers
ERROR_EVENT = "error_event"  # the stream ended with event: error (or an OpenAI error chunk)
INCOMPLETE = "incomplete"  # no terminal frame: EOF, read timeout, byte cap, stream deadline
# the run ended (interrupt, a worker stopped, the end-of-run grace ran out) while the request was
# still in flight: an attempt with an unknown end, reported with its elapsed time, never dropped
CENSORED = "censored"
DROPPED = "dropped"  # open loop: the in-flight cap was reached, the arrival was not sent
ERRORS = (HTTP_ERROR, TRANSPORT_ERROR, ERROR_EVENT)
OUTCOMES = (OK, *ERRORS, INCOMPLETE, CENSORED, DROPPED)
TOKEN_SOURCES = ("usage", "chunks")

ENDPOINTS = ("sessions", "completions")
DONE_DATA = "[DONE]"


UNPARSED: Any = object()  # a classifier's ``data`` when the caller has not parsed the event


def classify_session(event: Event, data: Any = UNPARSED) -> int:
    """Session API: ``agent_message`` with a non-empty delta is content; done/error terminate.

    ``data``: the event's data already parsed as JSON (None: not JSON), as
    ``StreamRecord.parsed()`` gives it to every reader of the stream; else parsed here.
    """
    kind = event.type
    if kind == "agent_message":
        try:
            if data is UNPARSED:
                data = json.loads(event.data)
            delta = data["payload"]["delta"]
        except (ValueError, KeyError, TypeError):
            return OTHER
        return CONTENT if isinstance(delta, str) and delta else OTHER
    if kind == "done":
        return DONE
    if kind == "error":
        return ERROR
    return OTHER


def classify_completion(event: Event, chunk: Any = UNPARSED) -> int:
    """Completions: a chunk whose delta.content is non-empty is content (not the role-only one).

    ``chunk``: the data already parsed (None: not JSON), as in :func:`classify_session`.
    """
    if event.data == DONE_DATA:
        return DONE
    if chunk is UNPARSED:
        try:
            chunk = json.loads(event.data)
        except ValueError:
            return OTHER
    if not isinstance(chunk, dict):
        return OTHER
    if "error" in chunk:
        return ERROR
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return OTHER
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str) and content:
            return CONTENT
    return OTHER


CLASSIFIERS: dict[str, Callable[[Event, Any], int]] = {
    "sessions": classify_session,
    "completions": classify_completion,
}


@dataclass(slots=True)
class Timeline:
    """Timestamps (perf_counter_ns) of one measured request; None where it never got."""

    endpoint: str
    t_intended: int
    worker: int = 0
    t_dispatch: int | None = None  # first request of this unit of work left (open-loop lag)
    t_sent: int | None = None
    t_headers: int | None = None
    t_first_event: int | None = None
    content: list[int] = field(default_factory=list)  # one per content delta
    t_terminal: int | None = None
    t_close: int | None = None
    status: int | None = None
    outcome: str = INCOMPLETE
    error: str | None = None
    bytes: int = 0
    wall: float = field(default_factory=time.time)
    usage_tokens: int | None = None  # completion_tokens of the server's usage, when it sent one
    recv_lag_ms: float | None = None  # sessions: worst receive time − frame tsMs (stream.py)
    request_id: str = ""
    response_id: str | None = None  # completions: the chunks' "id", to find it in server logs
    checked: bool = False  # the stream went through the conformance checks
    violations: list[dict[str, str]] = field(default_factory=list)  # {rule, level, message}

    def on_events(
        self,
        events: list[Event],
        classify: Callable[[Event, Any], int],
        parsed: list[Any] | None = None,
    ) -> bool:
        """Advance with ``events``; True once a terminal frame was seen.

        ``parsed``: each event's data as JSON, one per event (``StreamRecord.parsed()``: the
        parse the conformance checks read too), else each event is parsed here. Events after
        the terminal frame are ignored here (the conformance checks judge them).
        """
        for i, ev in enumerate(events):
            if self.t_terminal is not None:
                return True
            if self.t_first_event is None:
                self.t_first_event = ev.t_ns
            kind = classify(ev, parsed[i] if parsed is not None else UNPARSED)
            if kind == CONTENT:
                self.content.append(ev.t_ns)
            elif kind == DONE:
                self.t_terminal = ev.t_ns
                self.outcome = OK
            elif kind == ERROR:
                self.t_terminal = ev.t_ns
                self.outcome = ERROR_EVENT
                self.error = "the stream ended with an error frame"
        return self.t_terminal is not None

    def to_sample(self, redact: Callable[[str], str] | None = None) -> dict[str, Any]:
        """A JSON-able record: times in ms since the intended start (µs resolution)."""
        base = self.t_intended

        def ms(t: int | None) -> float | None:
            return None if t is None else round((t - base) / 1e6, 3)

        error = self.error
        if error is not None and redact is not None:
            error = redact(error)
        return {
            "endpoint": self.endpoint,
            "worker": self.worker,
            "wall": round(self.wall, 6),
            "outcome": self.outcome,
            "status": self.status,
            "error": error,
            "bytes": self.bytes,
            "dispatch_ms": ms(self.t_dispatch if self.t_dispatch is not None else self.t_sent),
            "sent_ms": ms(self.t_sent),
            "headers_ms": ms(self.t_headers),
            "first_event_ms": ms(self.t_first_event),
            "content_ms": [ms(t) for t in self.content],
            "terminal_ms": ms(self.t_terminal),
            "close_ms": ms(self.t_close),
            "id": self.request_id,
            # the server's text: redacted like an error, should a server echo the key in it
            "response_id": (
                redact(self.response_id)
                if self.response_id is not None and redact is not None
                else self.response_id
            ),
            "recv_lag_ms": self.recv_lag_ms,
            "output_tokens": self.output_tokens,
            "token_source": self.token_source,
            "checked": self.checked,
            "violations": [
                {k: (redact(v) if redact is not None else v) for k, v in f.items()}
                for f in self.violations
            ],
        }

    @property
    def token_source(self) -> str:
        """ "usage" when the server said how many tokens it produced, else "chunks"."""
        return "usage" if self.usage_tokens is not None else "chunks"

    @property
    def output_tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else len(self.content)


def derived(sample: dict[str, Any]) -> dict[str, float | None]:
    """The per-request figures of a sample (ms), as vLLM's `bench serve` defines them.

    ttfb = headers − sent; ttft = first content delta − sent; e2e = terminal frame − sent;
    tpot = (e2e − ttft) / (output tokens − 1); stall = the largest gap between content deltas;
    tail = terminal frame − last content delta; dispatch lag = first send − intended start.
    Output tokens are the server's usage when it gave one, else the content chunks.
    """
    sent = sample["sent_ms"]
    content = sample["content_ms"]
    terminal = sample["terminal_ms"]
    out: dict[str, float | None] = {
        "ttfb_ms": None,
        "ttft_ms": None,
        "e2e_ms": None,
        "tpot_ms": None,
        "stall_ms": None,
        "tail_ms": None,
        "recv_lag_ms": sample.get("recv_lag_ms"),
        "dispatch_lag_ms": sample["dispatch_ms"],
    }
    if sent is None:
        return out
    if sample["headers_ms"] is not None:
        out["ttfb_ms"] = sample["headers_ms"] - sent
    if content:
        out["ttft_ms"] = content[0] - sent
        if len(content) > 1:
            out["stall_ms"] = max(b - a for a, b in pairwise(content))
    if terminal is not None:
        out["e2e_ms"] = terminal - sent
        if content:
            out["tail_ms"] = terminal - content[-1]
    tokens = sample.get("output_tokens")
    if tokens is None:
        tokens = len(content)
    ttft, e2e = out["ttft_ms"], out["e2e_ms"]
    if ttft is not None and e2e is not None and tokens > 1:
        out["tpot_ms"] = (e2e - ttft) / (tokens - 1)
    return out


def itl_gaps(sample: dict[str, Any]) -> list[float]:
    """Every gap between consecutive content deltas of one request (ms)."""
    content = sample["content_ms"]
    return [b - a for a, b in pairwise(content)]


def usage_tokens(events: list[Event]) -> int | None:
    """``usage.completion_tokens`` of an OpenAI stream (the chunk ``include_usage`` adds), if any."""
    for ev in reversed(events):
        if '"usage"' not in ev.data:
            continue
        try:
            chunk = json.loads(ev.data)
        except ValueError:
            continue
        usage = chunk.get("usage") if isinstance(chunk, dict) else None
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
            return tokens
    return None
