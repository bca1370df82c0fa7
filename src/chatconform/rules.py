"""The contract's rules as data, declared once: id, level, family, title and clauses (specs/CONTRACT.md).

Everything else refers to this registry: suite markers, findings, the spec's `x-rules`, the reports. An
id or clause that is not here is an error where it is written (collection time, or the Finding's
constructor), never a KeyError at report time. A rule with several clauses (SSE-4's three event kinds,
SSE-6's `done` and `error`, ...) is judged per clause: the verdict names the clauses exercised.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

Level = Literal["D", "C", "I"]  # I: informational, never changes a verdict
SOLE = "all"  # the clause id of a rule that has one clause

FAMILIES: tuple[str, ...] = ("sessions", "history", "streaming", "errors", "auth", "completions")


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    level: Level  # D when any part of the rule is documented; findings may mark a C-only part
    family: str
    title: str
    clauses: tuple[tuple[str, str], ...] = ((SOLE, ""),)  # (clause id, what it covers)

    @property
    def clause_ids(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.clauses)


_RULES: tuple[Rule, ...] = (
    Rule("AUTH-1", "D", "auth", "Every operation needs a Bearer secret key; a bad one gets 401"),
    Rule(
        "AUTH-2",
        "D",
        "auth",
        "chat:write / chat:read scopes; a key without the scope gets 403",
        clauses=(
            ("read-only", "a read-only key is refused chat:write operations"),
            ("write-only", "a write-only key is refused chat:read operations"),
        ),
    ),
    Rule("AUTH-3", "D", "auth", "A publishable key is never accepted (401 or 403)"),
    Rule(
        "AUTH-4",
        "D",
        "auth",
        "Another organization's session is 404 and leaks nothing",
        clauses=(
            ("get", "GET of another organization's session"),
            ("list", "its messages"),
            ("post", "posting to it"),
            ("end", "ending it"),
        ),
    ),
    Rule("AUTH-5", "C", "auth", "Bearer is case-insensitive; keys elsewhere are not accepted"),
    Rule(
        "ERR-1",
        "D",
        "errors",
        "Every 4xx/5xx is problem+json with status, title, detail, type, code",
    ),
    Rule(
        "ERR-2",
        "D",
        "errors",
        "Invalid bodies get 400 validation_error with errors[] naming fields",
    ),
    Rule(
        "ERR-3",
        "D",
        "errors",
        "429 carries Retry-After",
        clauses=(("429", "a 429 was provoked and carried Retry-After"),),
    ),
    Rule("ERR-4", "C", "errors", "No request built from the schemas gets a 5xx"),
    Rule("ENV-1", "D", "errors", 'Session API 2xx JSON is {"success": true, "data": ...}'),
    Rule("SES-1", "D", "sessions", "POST /chat/sessions creates a session (201, a Session)"),
    Rule(
        "SES-2",
        "D",
        "sessions",
        "draftMode runs the draft; unpublished agent is 409 otherwise",
        clauses=(
            ("draft", "draftMode: true on an unpublished agent"),
            ("no-published-version", "an unpublished agent without draftMode gets 409"),
            ("defaults-false", "a session created without draftMode has draftMode false"),
        ),
    ),
    Rule(
        "SES-3",
        "C",
        "sessions",
        "Unknown or foreign agentId gets 404 agent_not_found",
        clauses=(
            ("unknown-agent", "an agentId nobody issued"),
            ("foreign-agent", "another organization's agent"),
        ),
    ),
    Rule("SES-4", "C", "sessions", "Session shape; GET /chat/sessions/{id} returns it"),
    Rule("SES-5", "C", "sessions", "End returns the ended Session, idempotently; stays readable"),
    Rule("SES-6", "C", "sessions", "Posting to an ended session gets 409 session_ended"),
    Rule("SES-7", "C", "sessions", "Unknown session id gets 404 session_not_found everywhere"),
    Rule("MSG-1", "D", "history", "Post message takes content (1..32000 chars) and stream"),
    Rule("MSG-2", "D", "history", "stream:false returns the assembled messages of the turn"),
    Rule("MSG-3", "C", "history", "Message shape (id, sessionId, role, content, createdAt, ...)"),
    Rule("MSG-4", "D", "history", "History: oldest first, paginated, every message exactly once"),
    Rule("MSG-5", "C", "history", "History equals what the turns returned, streamed or not"),
    Rule("MSG-6", "C", "history", "Concurrent posts both succeed or one gets 409 session_busy"),
    Rule(
        "MSG-7",
        "C",
        "history",
        "Dropping a stream mid-way leaves the session well formed",
        clauses=(
            ("dropped-mid-stream", "a stream the client really dropped before its terminal frame"),
        ),
    ),
    Rule("SSE-1", "D", "streaming", "Streamed replies are 200 text/event-stream"),
    Rule("SSE-2", "D", "streaming", "The body is a valid event stream; every frame ends blank"),
    Rule("SSE-3", "D", "streaming", "Frames carry an AuditEvent whose eventType equals event:"),
    Rule(
        "SSE-4",
        "D",
        "streaming",
        "Deltas, tool calls and retrievals have their payload shapes",
        clauses=(
            ("delta", "agent_message deltas"),
            ("tool_call", "a tool_call event"),
            ("kb_retrieval", "a kb_retrieval event"),
        ),
    ),
    Rule("SSE-5", "D", "streaming", "Exactly one terminal done/error frame ends the stream"),
    Rule(
        "SSE-6",
        "C",
        "streaming",
        "done carries the assembled messages; error a problem",
        clauses=(
            ("done", "the done frame's assembled messages"),
            ("error", "an error frame's problem object"),
        ),
    ),
    Rule("SSE-7", "C", "streaming", "seq from 1 by 1, tsMs non-decreasing, ids unique"),
    Rule("SSE-8", "C", "streaming", "Frames are flushed as produced, not buffered"),
    Rule("OAI-1", "D", "completions", "Takes the OpenAI request shape; extra fields ignored"),
    Rule("OAI-2", "D", "completions", "Unknown model, missing model/messages get 400"),
    Rule("OAI-3", "D", "completions", "Non-streamed reply is a chat.completion object"),
    Rule("OAI-4", "D", "completions", "Streamed reply is chunks ending with data: [DONE]"),
    Rule(
        "OAI-5",
        "D",
        "completions",
        "The official OpenAI SDKs work with a base-URL swap",
        clauses=(
            ("python-plain", "Python SDK, plain"),
            ("python-stream", "Python SDK, streamed"),
            ("node-plain", "Node SDK, plain"),
            ("node-stream", "Node SDK, streamed"),
        ),
    ),
    Rule("OAI-6", "C", "completions", "Streamed and plain completions carry the same text"),
    Rule("OAI-7", "C", "completions", "Errors also carry an OpenAI-style error member"),
)

RULES: dict[str, Rule] = {rule.id: rule for rule in _RULES}


class UnknownRule(ValueError):
    """A rule id or clause that the registry does not know: a mistake in the harness, never the target's."""


def rule(rule_id: str) -> Rule:
    try:
        return RULES[rule_id]
    except KeyError:
        raise UnknownRule(f"unknown contract rule id {rule_id!r}") from None


@cache
def clause_of(rule_id: str, clause: str | None) -> str:
    """The clause id (the sole clause when None); an unknown clause, or None for a rule with several
    clauses, is an UnknownRule error."""
    r = rule(rule_id)
    if clause is None:
        if len(r.clauses) != 1:
            raise UnknownRule(f"{rule_id} has clauses {', '.join(r.clause_ids)}: name one")
        return r.clauses[0][0]
    if clause not in r.clause_ids:
        raise UnknownRule(
            f"{rule_id} has no clause {clause!r} (its clauses: {', '.join(r.clause_ids)})"
        )
    return clause


def rules_of(families: list[str] | tuple[str, ...]) -> list[Rule]:
    return [r for r in _RULES if r.family in families]


def markdown() -> str:
    """docs/rules.md: the registry as a table (id, level, family, title, clauses)."""
    lines = [
        "# Contract rules as chatconform judges them",
        "",
        "Generated from `chatconform.rules` (`python -m chatconform.rules > docs/rules.md`); the rule",
        "texts are in [specs/CONTRACT.md](../specs/CONTRACT.md). A rule with several clauses is judged",
        "per clause: its verdict names the clauses exercised and those that were not.",
        "",
        "| rule | level | suite | title | clauses |",
        "|---|---|---|---|---|",
    ]
    for r in _RULES:
        clauses = "; ".join(f"`{c}`: {what}" for c, what in r.clauses if what) or "(one)"
        lines.append(f"| {r.id} | {r.level} | {r.family} | {r.title} | {clauses} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
