"""SSE-aware checks for Schemathesis, on chatconform's own parser and stream checks.

Schemathesis validates each event of a `text/event-stream` response against the spec's `itemSchema`,
but neither termination nor order. These checks add them for every streamed response, through the
project's one SSE parser (`chatconform.sse`, via `record.StreamRecord`) and its checks
(`checks.streaming.session_stream`, `checks.completions.completion_stream`):

- postMessage streams: SSE-1 .. SSE-7 (termination SSE-5, frame shape SSE-3, order SSE-7, ...);
- /chat/completions streams: OAI-4 (`data: [DONE]` last and nothing after it, chunk shape, ...).

The fuzz suite calls `stream_findings` on the Exchange that chatconform's bounded client recorded
(real arrival times; the whole stream parsed, however long; a stream cut by the time or byte bound
says so). Under `schemathesis run` (the CLI hooks) the check `chatconform_event_stream` rebuilds the
stream from the body Schemathesis buffered, which Schemathesis itself cuts at `request-timeout` /
`max-stream-events` (`schemathesis.toml`).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from schemathesis import Case, CheckContext, Response
from schemathesis.core.failures import Failure, Severity

from chatconform.checks.completions import completion_stream
from chatconform.checks.streaming import session_stream
from chatconform.record import Exchange, StreamRecord
from chatconform.verdicts import Finding, Outcome

SSE_MEDIA_TYPE = "text/event-stream"


class ContractViolation(Failure):
    """A chatconform check found a contract rule broken in a streamed response."""

    code = "ST901"
    checks = ("chatconform_event_stream",)
    kind_title = "Event stream breaks the contract"
    __slots__ = ("findings",)

    def __init__(self, *, operation: str | None, findings: list[Finding]) -> None:
        lines = [f"{f.rule}: expected {f.expected}; got {f.got}" for f in findings]
        rules = ", ".join(sorted({f.rule for f in findings}))
        super().__init__(
            operation=operation,
            title=f"Event stream breaks {rules}",
            message="\n".join(lines),
            severity=Severity.HIGH,
        )
        self.findings = findings

    @property
    def _unique_key(self) -> str:
        return ",".join(sorted({f.rule for f in self.findings}))


def request_json(ex: Exchange) -> Any:
    try:
        return json.loads(ex.request_body) if ex.request_body else None
    except ValueError:
        return None


def asked_stream(ex: Exchange) -> bool:
    body = request_json(ex)
    return isinstance(body, dict) and body.get("stream") is True


def session_id_of(url: str) -> str:
    """The `{sessionId}` of a `/chat/sessions/{sessionId}/messages` URL."""
    path = urlsplit(url).path
    parts = path.rstrip("/").split("/")
    return unquote(parts[-2]) if len(parts) >= 2 else ""


#: The SSE-4 / SSE-6 clauses a fuzzed reply may leave unexercised, with why (shown only when no
#: other check of the run exercised them).
UNEXERCISED: tuple[tuple[str, str, str], ...] = (
    ("SSE-4", "tool_call", "no fuzzed reply carried a tool_call event"),
    ("SSE-4", "kb_retrieval", "no fuzzed reply carried a kb_retrieval event"),
    ("SSE-6", "error", "no fuzzed reply ended with an error frame"),
)


def stream_findings(ex: Exchange, operation_id: str) -> Outcome:
    """The stream rules one response can break, when it is (or was asked to be) an event stream,
    with what the checks examined on it (their evidence, clause by clause).

    Only 200s are streams; errors found before the stream starts are problem+json (SSE-1).
    """
    if ex.status != 200:
        return Outcome()
    streamed = ex.media_type == SSE_MEDIA_TYPE
    if not streamed and not asked_stream(ex):
        return Outcome()
    body = request_json(ex)
    if operation_id == "postMessage":
        content = body.get("content") if isinstance(body, dict) else None
        out = session_stream(ex, session_id_of(ex.url), content if isinstance(content, str) else "")
        for rule, clause, why in UNEXERCISED:
            if (rule, clause) not in out.examined:
                out.not_exercised(rule, clause, why)
        return out
    if operation_id == "createChatCompletion":
        # the model the request named, as sent (the target's agent when it has one): every
        # finding is kept, "the same id, created and model on every chunk" included
        model = body.get("model") if isinstance(body, dict) else None
        found, _ = completion_stream(ex, model if isinstance(model, str) else "")
        return found
    return Outcome()


def exchange_from_response(response: Response) -> Exchange:
    """An Exchange rebuilt from what Schemathesis buffered, its stream parsed by chatconform's parser."""
    request = response.request
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    ex = Exchange(
        method=str(request.method),
        url=str(request.url),
        request_headers={k: str(v) for k, v in request.headers.items()},
        request_body=body,
    )
    ex.status = response.status_code
    ex.headers = {k.lower(): ", ".join(v) for k, v in response.headers.items()}
    ex.t_headers_ns = ex.t_end_ns = time.perf_counter_ns()
    if ex.media_type == SSE_MEDIA_TYPE:
        rec = ex.stream = StreamRecord()
        rec.feed(response.content, ex.t_headers_ns)
        cut = bool(getattr(response, "stream_cut_short", False))
        rec.close("timeout" if cut else "eof")
        if cut:
            ex.error = (
                "Schemathesis stopped reading the stream (request-timeout or max-stream-events)"
            )
    ex.body = response.content
    return ex


def chatconform_event_stream(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Schemathesis check: termination (SSE-5, OAI-4), frame shape (SSE-3), order (SSE-7), ...

    Registered with `@schemathesis.check` by `chatconform.fuzz.hooks` for `schemathesis run`.
    """
    operation_id = case.operation.definition.raw.get("operationId", "")
    ex = exchange_from_response(response)
    found = stream_findings(ex, operation_id)
    if found:
        raise ContractViolation(operation=case.operation.label, findings=list(found))
    return None


#: The custom checks, for `validate_response(additional_checks=...)`.
CUSTOM_CHECKS: list[Any] = [chatconform_event_stream]
