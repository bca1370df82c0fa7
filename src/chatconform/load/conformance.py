"""Conformance under load: every stream a load user reads goes through the suites' own stream checks.

The checks are the suites' (``checks.streaming.session_stream``, ``checks.completions.
completion_stream``), run on the same recorded observation (record.Exchange) that the latency
figures come from; nothing here re-implements a rule. What is judged: every 200 response to a
streamed request that ended on the server's side (EOF). Not judged, and counted as errors or
incomplete instead: other statuses (a 429 or 503 under load is the error rate's business),
transport failures, and streams the client itself cut (its stream deadline or byte cap), whose
missing terminal frame says nothing about the server's framing.

A judged stream is *violating* when a check made a finding that is not a note (level I): a
documented rule (D) or a contract decision (C), whichever level; the rule ids and the first message
per rule go into the sample, so load-summary.json can count streams per rule and show an example.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from chatconform.checks.completions import completion_stream
from chatconform.checks.streaming import session_stream
from chatconform.record import Exchange
from chatconform.verdicts import Finding

MESSAGE_CHARS = 300
# the component schemas the stream checks validate against, compiled before the run starts
SCHEMAS = (
    "AuditEvent",
    "AgentMessagePayload",
    "ToolCallPayload",
    "KbRetrievalPayload",
    "ChatCompletionChunk",
    "Message",
)


def warm_up() -> None:
    """Load the spec and compile the validators now, not inside the first measured stream."""
    from chatconform.spec import fast_validator, validator

    for name in SCHEMAS:
        validator(name)
        fast_validator(name)


def judged(ex: Exchange) -> bool:
    """Whether the checks judge this exchange (see the module docstring)."""
    if ex.status != 200 or ex.timed_out or ex.over_cap:
        return False
    return ex.stream is None or ex.stream.ended_by == "eof"


def findings_of(result: Any) -> Sequence[Finding]:
    """A check's findings, whether it returns them alone or as (findings, text)."""
    if isinstance(result, tuple):
        return result[0]
    return result


def check_session(ex: Exchange, session_id: str, content: str) -> list[Finding]:
    return _violations(findings_of(session_stream(ex, session_id, content)))


def check_completion(ex: Exchange, model: str) -> list[Finding]:
    return _violations(findings_of(completion_stream(ex, model)))


def _violations(found: Sequence[Finding]) -> list[Finding]:
    return [f for f in found if f.kind == "target" and not f.is_note]


def summarize(found: list[Finding]) -> list[dict[str, str]]:
    """One entry per rule broken (its first finding): what a sample carries to the master."""
    out: dict[str, dict[str, str]] = {}
    for f in found:
        if f.rule not in out:
            message = f"expected {f.expected}; got {f.got}"
            if len(message) > MESSAGE_CHARS:
                message = message[: MESSAGE_CHARS - 1] + "…"
            out[f.rule] = {"rule": f.rule, "level": f.effective_level(), "message": message}
    return list(out.values())


class CheckClock:
    """CPU time spent in the checks in this process (the benchmark's and the summary's figure)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.streams = 0
        self.events = 0

    def timed(self, fn: Any, ex: Exchange, *args: Any) -> list[Finding]:
        t0 = time.perf_counter()
        try:
            return fn(ex, *args)  # type: ignore[no-any-return]
        finally:
            self.seconds += time.perf_counter() - t0
            self.streams += 1
            self.events += len(ex.stream.events) if ex.stream is not None else 0

    def report(self) -> dict[str, Any]:
        return {
            "check_seconds": round(self.seconds, 6),
            "checked_streams": self.streams,
            "checked_events": self.events,
        }
