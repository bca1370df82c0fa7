"""Fault switches (each breaks exactly one contract rule) and variations (legitimate differences:
on the wire, or leniency the contract allows)."""

from __future__ import annotations

import random
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field

#: fault name -> the rule it breaks and how.
FAULTS: dict[str, str] = {
    "no-terminal": "SSE-5: the session stream ends without a done frame",
    "frame-after-done": "SSE-5: one more agent_message frame follows done",
    "two-terminals": "SSE-5: done, then another done",
    "wrong-content-type": "SSE-1: the session stream is sent as application/json",
    "event-name-mismatch": "SSE-3: agent_message frames are named `event: message`",
    "seq-gap": "SSE-7: seq skips one number mid-stream",
    "no-final-blank-line": "SSE-2: the last frame has no terminating blank line",
    "buffered": "SSE-8: the whole reply is sent in one chunk at the end",
    "history-missing-assistant": "MSG-5: streamed turns store no assistant messages",
    "history-newest-first": "MSG-4: the history lists newest first",
    "ended-accepts": "SES-6: posting to an ended session succeeds",
    "readonly-can-post": "AUTH-2: a chat:read-only key can post messages",
    "cross-tenant-read": "AUTH-4: another organization's key can GET a session",
    "publishable-accepted": "AUTH-3: the publishable key is accepted like a secret key",
    "plain-json-errors": "ERR-1: errors are sent as application/json",
    "invalid-json-500": "ERR-2: an invalid JSON body gets a 500",
    "completion-no-done": "OAI-4: the completion stream ends without data: [DONE]",
    "completion-event-lines": "OAI-4: every completion chunk carries an `event: chunk` line",
    "unknown-model-404": "OAI-2: an unknown model gets a 404",
    "long-content-500": "ERR-4/MSG-1: content over 32,000 characters gets a 500",
    "nonstring-agent-500": "ERR-4: a non-string agentId crashes with a 500",
    "missing-errors-array": "ERR-2: the 400 for a missing content has no errors[]",
    "invalid-json-accepted": "ERR-2: invalid JSON on create session creates a session anyway",
    "missing-model-accepted": "OAI-2: a completion without `model` is answered by the key's agent",
    "nonarray-messages-accepted": "OAI-2: a non-array `messages` is taken as one message",
    "no-terminal-once": "SSE-5: the first session stream ends without a done frame, later ones "
    "are correct (a flaky server: a re-run does not see it)",
}

#: variation name -> what changes (on the wire of both APIs' streams, `extra` also in JSON bodies;
#: `random-replies` the agent's text; `lenient` what the server accepts, only where the
#: contract allows leniency).
VARIATIONS: dict[str, str] = {
    "crlf": "CRLF line ends",
    "cr": "bare CR line ends",
    "keepalive": "`: keep-alive` comment lines at the start and between frames",
    "nospace": "`data:` and `event:` without the space after the colon",
    "split-data": "each JSON payload split over several data: lines",
    "bom": "a UTF-8 BOM as the first bytes of the stream",
    "extra": "unknown fields in every JSON object, and an extra `latency` frame",
    "dribble": "the body is written 1-7 bytes at a time",
    "random-replies": "the agent's reply differs on every request (a random word in it), as an "
    "LLM's does; the credentials file says deterministic: false",
    "lenient": "completions accept a message without content (e.g. a tool message) and any "
    "`name`, `tool_call_id`, `user` or `stream` value; /end ignores its body",
}


#: whether the fault hits the request being served (set per request by app.CatchAll)
FAULT_HIT: ContextVar[bool] = ContextVar("chatconform_fault_hit", default=True)
_ONCE = threading.Lock()
_DRAWS = random.Random(20261129)  # seeded: the same server run draws the same sequence


@dataclass(frozen=True)
class Switches:
    """The fault (at most one), the share of requests it hits, and the variations of a run."""

    fault: str | None = None
    variations: frozenset[str] = field(default_factory=frozenset)
    fault_rate: float = 1.0  # the fault hits this share of requests, drawn per request
    spent: set[str] = field(
        default_factory=set, compare=False, repr=False
    )  # faults that fired once

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}")
        unknown = sorted(set(self.variations) - set(VARIATIONS))
        if unknown:
            raise ValueError(f"unknown variation(s) {', '.join(unknown)}")
        if not 0.0 < self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be in (0, 1]")

    def fault_is(self, name: str) -> bool:
        """True when the run's fault is ``name`` and it hits the request being served."""
        assert name in FAULTS, name
        return self.fault == name and FAULT_HIT.get()

    def fault_once(self, name: str) -> bool:
        """True the first time only that the run's fault ``name`` hits (a `-once` fault)."""
        if not self.fault_is(name):
            return False
        with _ONCE:
            if name in self.spent:
                return False
            self.spent.add(name)
            return True

    def draw(self) -> bool:
        """Whether the fault hits the next request (always, at the default rate of 1)."""
        return self.fault_rate >= 1.0 or _DRAWS.random() < self.fault_rate

    def has(self, variation: str) -> bool:
        """True when ``variation`` is switched on."""
        assert variation in VARIATIONS, variation
        return variation in self.variations
