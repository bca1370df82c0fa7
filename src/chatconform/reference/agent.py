"""The scripted agent: a deterministic plan for one turn, computed from the user's text alone.

- text with a 5-digit ZIP code: a knowledge retrieval, a ``lookup_store`` tool call, then the reply;
- text mentioning "hours": a knowledge retrieval, then the reply (carrying the knowledge);
- text asking it to "simulate an agent failure": the turn fails (an ``error`` frame when streamed);
- anything else: just the reply.

The reply is always exactly ``tokens`` deltas and contains non-ASCII text (UTF-8 is exercised).
With a ``nonce`` (the ``random-replies`` variation) the first delta carries it, so the same request
gets a different reply each time: an agent that is not deterministic, as one backed by an LLM.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

ZIP_RE = re.compile(r"\b\d{5}\b")
HOURS_RE = re.compile(r"hours", re.IGNORECASE)
FAIL_RE = re.compile(r"simulate an agent failure", re.IGNORECASE)


class AgentFailure(RuntimeError):
    """The scripted agent was asked to fail this turn."""


#: what the credentials file names as this agent's prompts (CONTRACT SSE-4: the target says them)
TOOL_PROMPT = "Is there a store near 60614?"  # a ZIP code: a knowledge retrieval and a tool call
KNOWLEDGE_PROMPT = "What are your opening hours?"  # "hours": a knowledge retrieval

_FILLER = ("encore", "café", "naïve", "déjà", "vu", "—", "merci", "¡olé!", "très", "bien")


@dataclass(frozen=True)
class ToolStep:
    """A tool call the agent makes before replying."""

    name: str
    arguments: dict[str, Any]
    output: dict[str, Any]


@dataclass(frozen=True)
class TurnPlan:
    """What the agent does for one user message."""

    kb_query: str | None
    kb_chunks: list[dict[str, Any]]
    tool: ToolStep | None
    deltas: list[str]

    @property
    def reply(self) -> str:
        """The reply text: the concatenated deltas."""
        return "".join(self.deltas)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _words(base: list[str], digest: str, tokens: int) -> list[str]:
    start = int(digest[:8], 16)
    words = list(base)
    i = 0
    while len(words) < tokens:
        words.append(_FILLER[(start + i) % len(_FILLER)])
        i += 1
    words = words[:tokens]
    return [w if n == 0 else " " + w for n, w in enumerate(words)]


def _hours_chunks() -> list[dict[str, Any]]:
    return [
        {
            "id": "kb_hours_1",
            "answer": "Stores open 09:00–21:00, Monday to Saturday.",
            "similarity": 0.92,
            "sourceUrl": "https://docs.flowyte.com/kb/store-hours",
        }
    ]


def _zip_chunks(zip_code: str) -> list[dict[str, Any]]:
    return [
        {
            "id": "kb_locator_1",
            "answer": f"Every ZIP code, {zip_code} included, is served by its nearest store.",
            "similarity": 0.87,
            "sourceUrl": "https://docs.flowyte.com/kb/store-locator",
        }
    ]


def plan_turn(content: str, tokens: int, nonce: str | None = None) -> TurnPlan:
    """The plan for a user message ``content`` with a reply of ``tokens`` deltas: deterministic,
    unless a ``nonce`` is given (then the reply's first delta starts with it)."""
    plan = _plan(content, tokens)
    if nonce is None:
        return plan
    deltas = [f"[{nonce}] {plan.deltas[0]}", *plan.deltas[1:]]
    return TurnPlan(plan.kb_query, plan.kb_chunks, plan.tool, deltas)


def _plan(content: str, tokens: int) -> TurnPlan:
    if FAIL_RE.search(content):
        raise AgentFailure("asked to simulate an agent failure")
    digest = _digest(content)
    match = ZIP_RE.search(content)
    if match:
        zip_code = match.group(0)
        tool = ToolStep(
            name="lookup_store",
            arguments={"zip": zip_code},
            output={
                "storeId": f"st_{zip_code}",
                "zip": zip_code,
                "name": f"Flowyte Café {zip_code}",
                "opens": "09:00",
                "closes": "21:00",
            },
        )
        base = [
            "Voilà—",
            "the",
            "store",
            "for",
            zip_code,
            "opens",
            "09:00",
            "and",
            "closes",
            "21:00.",
        ]
        return TurnPlan(content, _zip_chunks(zip_code), tool, _words(base, digest, tokens))
    if HOURS_RE.search(content):
        base = ["Voilà—", "our", "hours:", "09:00–21:00,", "Monday", "to", "Saturday."]
        return TurnPlan(content, _hours_chunks(), None, _words(base, digest, tokens))
    base = ["Voilà—", "a", "scripted", "réponse", f"#{digest[:6]}", "for", "you."]
    return TurnPlan(None, [], None, _words(base, digest, tokens))
