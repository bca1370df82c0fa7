"""What the contract says about Schemathesis's checks, and which rule a failure breaks.

One source for both entry points: `chatconform run --suite fuzz` builds its Schemathesis config from
`schemathesis_settings()`, and the top-level `schemathesis.toml` repeats the same tables for users who
run `schemathesis run` themselves (a self-test keeps the two in step).
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from chatconform.rules import RULES
from chatconform.spec import load_spec

#: operationId -> the rule a request to it is about (a valid request rejected breaks it).
OPERATION_RULE: dict[str, str] = {
    "createSession": "SES-1",
    "getSession": "SES-4",
    "listMessages": "MSG-4",
    "postMessage": "MSG-1",
    "endSession": "SES-5",
    "createChatCompletion": "OAI-1",
}

#: operationId -> the rules a 2xx JSON body of it is checked for against its response schema
#: (ENV-1, the envelope, is every_response's; MSG-3 is added when the body carries messages).
SCHEMA_RULES: dict[str, tuple[str, ...]] = {
    "createSession": ("SES-1", "SES-4"),
    "getSession": ("SES-4",),
    "listMessages": ("MSG-4",),
    "postMessage": ("MSG-2",),
    "endSession": ("SES-5",),
    "createChatCompletion": ("OAI-3",),
}
#: The operations on one session, whose 404 for an unknown id is SES-7's.
SESSION_OPERATIONS: frozenset[str] = frozenset(
    {"getSession", "listMessages", "postMessage", "endSession"}
)

#: The statuses a schema-valid request may get (AUTH-1/2, SES-2/3/6/7, MSG-6, ERR-3). Schemathesis's
#: default also lists 5xx, which the contract never allows (ERR-4).
POSITIVE_STATUSES: list[str] = ["2xx", "401", "403", "404", "409", "429"]
#: ... and, per operation, the 400s the contract intends for schema-valid requests: a `cursor` that no
#: page ever issued (MSG-4), and an unknown `model` (OAI-2).
POSITIVE_EXTRA: dict[str, list[str]] = {"listMessages": ["400"], "createChatCompletion": ["400"]}
#: The statuses a request that breaks the schema may get: 400 (ERR-2; never 422), 401 (a missing or
#: malformed key, AUTH-1), 403, 404 (a broken path parameter names no session, SES-7), 405, 406,
#: 409, 415 and 429.
NEGATIVE_STATUSES: list[str] = ["400", "401", "403", "404", "405", "406", "409", "415", "429"]

#: The built-in checks the fuzz suite runs (all of Schemathesis's relevant response checks).
#: In this order, so that the first finding of a 5xx names the invalid part of a negative case.
BUILTIN_CHECKS: tuple[str, ...] = (
    "negative_data_rejection",
    "positive_data_acceptance",
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "ignored_auth",
    "missing_required_header",
    "unsupported_method",
)


def checks_table(operation_id: str | None = None) -> dict[str, Any]:
    """The `[checks]` table: global, or with an operation's own expected statuses."""
    positive = POSITIVE_STATUSES + POSITIVE_EXTRA.get(operation_id or "", [])
    return {
        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx"]},
        "positive_data_acceptance": {"expected-statuses": positive},
        "negative_data_rejection": {"expected-statuses": NEGATIVE_STATUSES},
        "missing_required_header": {"expected-statuses": ["401"]},
    }


def schemathesis_settings(
    *, agent_id: str | None = None, max_examples: int | None = None, seed: int | None = None
) -> dict[str, Any]:
    """The Schemathesis config (as `SchemathesisConfig.from_dict` takes it) for this contract."""
    operations: list[dict[str, Any]] = [
        {"include-operation-id": op, "checks": checks_table(op)} for op in POSITIVE_EXTRA
    ]
    if agent_id:
        # The target's real agent, so that sessions and completions get past "agent not found":
        # the model of /chat/completions is the agent id (OAI-1).
        for op, field in (("createSession", "agentId"), ("createChatCompletion", "model")):
            entry = next((o for o in operations if o["include-operation-id"] == op), None)
            if entry is None:
                entry = {"include-operation-id": op}
                operations.append(entry)
            entry["parameters"] = {f"body.{field}": agent_id}
    settings: dict[str, Any] = {
        "checks": checks_table(),
        "operations": operations,
        "generation": {"mode": "all", "database": "none"},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}},
    }
    if max_examples is not None:
        settings["generation"]["max-examples"] = max_examples
    if seed is not None:
        settings["seed"] = seed
    return settings


# -- failure -> rule ----------------------------------------------------------------------------
def operation_of(method: str, path_template: str) -> dict[str, Any]:
    return load_spec()["paths"][path_template][method.lower()]


def rule_for_status(operation_id: str, status: int) -> str:
    """The rule an unexpected status breaks, by what that status means in the contract."""
    if status >= 500:
        return "ERR-4"
    if status in (400, 422):
        return "OAI-2" if operation_id == "createChatCompletion" else "ERR-2"
    if status == 401:
        return "AUTH-1"
    if status == 403:
        return "AUTH-2"
    if status == 404:
        if operation_id == "createSession":
            return "SES-3"
        return "OAI-2" if operation_id == "createChatCompletion" else "SES-7"
    if status == 409:
        return "SES-2" if operation_id == "createSession" else "SES-6"
    if status == 429:
        return "ERR-3"
    if status >= 400:
        return "ERR-1"
    return OPERATION_RULE[operation_id]


def _resolve(node: Any) -> Any:
    spec = load_spec()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        cur: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            cur = cur[part]
        node = cur
    return node


def response_rules(method: str, path_template: str, status: int) -> list[str]:
    """The `x-rules` of the response the spec declares for `status` (with its operation's as backup)."""
    op = operation_of(method, path_template)
    responses = op.get("responses", {})
    resp = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or {}
    rules = list(_resolve(resp).get("x-rules", [])) if isinstance(resp, dict) else []
    return rules + [r for r in op.get("x-rules", []) if r not in rules]


@cache
def _own_rules(component: str) -> tuple[str, ...]:
    """A component schema's x-rules minus those it inherits through allOf (its specific rules)."""
    schemas = load_spec()["components"]["schemas"]
    node = schemas.get(component, {})
    rules = list(node.get("x-rules", []))
    inherited: set[str] = set()
    for part in node.get("allOf", []):
        ref = part.get("$ref", "") if isinstance(part, dict) else ""
        if ref.startswith("#/components/schemas/"):
            inherited.update(schemas.get(ref.rsplit("/", 1)[1], {}).get("x-rules", []))
    own = [r for r in rules if r not in inherited]
    return tuple(own or rules)


_SCHEMA_AT = re.compile(r"/components/schemas/([A-Za-z0-9_.-]+)")


def rule_for_schema_failure(
    method: str, path_template: str, status: int, message: str, operation_id: str
) -> str:
    """The rule a response-schema violation breaks: the `x-rules` of the component that failed.

    Schemathesis names the failing subschema by its place in the document ("Schema at
    /components/schemas/ValidationProblem/allOf/1"); the deepest component named there decides,
    preferring its own rules over the ones it inherits (ValidationProblem: ERR-2 rather than ERR-1)
    and among those the ones this response is about. Inline response schemas fall back to the
    response's own `x-rules` (SessionNotFound: SES-7).
    """
    context = response_rules(method, path_template, status)
    names = _SCHEMA_AT.findall(message)
    for name in reversed(names):
        own = [r for r in _own_rules(name) if r in RULES]
        if own:
            preferred = [r for r in own if r in context]
            return (preferred or own)[0]
    for rule in context:
        if rule in RULES:
            return rule
    return OPERATION_RULE[operation_id]


def rule_for_content_type(operation_id: str, status: int, streamed: bool) -> str:
    if status >= 400:
        return "ERR-1"
    if operation_id == "postMessage" and streamed:
        return "SSE-1"
    if operation_id == "createChatCompletion":
        return "OAI-4" if streamed else "OAI-3"
    return "ENV-1"


def rule_for_failure(
    check: str,
    *,
    method: str,
    path_template: str,
    operation_id: str,
    status: int,
    message: str,
    streamed: bool,
    instance: Any = None,
) -> tuple[str, str | None]:
    """The contract rule (and clause) a failed Schemathesis check stands for.

    `instance` is what a schema check rejected: for one event of a session stream it decides the
    rule by that event's payload (`rule_for_stream_event`), never framing.
    """
    if status >= 500:
        return "ERR-4", None
    if check == "not_a_server_error":
        return "ERR-4", None
    if check == "status_code_conformance":
        return rule_for_status(operation_id, status), None
    if check == "content_type_conformance":
        return rule_for_content_type(operation_id, status, streamed), None
    if check == "response_headers_conformance":
        return "ERR-3", None
    if check == "response_schema_conformance":
        if operation_id == "postMessage" and streamed and is_stream_item(instance):
            return rule_for_stream_event(instance)
        return rule_for_schema_failure(method, path_template, status, message, operation_id), None
    if check == "negative_data_rejection":
        return ("OAI-2" if operation_id == "createChatCompletion" else "ERR-2"), None
    if check == "positive_data_acceptance":
        return OPERATION_RULE[operation_id], None
    if check in ("ignored_auth", "missing_required_header"):
        return "AUTH-1", None
    if check == "unsupported_method":
        return "ERR-1", None
    return OPERATION_RULE[operation_id], None


def request_schema_error(operation_id: str, body: Any) -> str | None:
    """The first way a JSON request body breaks its operation's schema, in words (None: valid,
    or the operation takes no body schema)."""
    from chatconform.spec import validator

    for item in load_spec()["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                content = (op.get("requestBody") or {}).get("content", {})
                ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                if not ref.startswith("#/components/schemas/") or body is None:
                    return None
                errors = sorted(
                    validator(ref.rsplit("/", 1)[1]).iter_errors(body), key=lambda e: list(e.path)
                )
                if not errors:
                    return None
                where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
                return f"at {where}: {errors[0].message}"[:300]
    return None


# -- one event of a session stream ---------------------------------------------------------------
#: agent_message / tool_call / kb_retrieval: the payload schema and SSE-4 clause of each.
PAYLOADS: dict[str, tuple[str, str]] = {
    "agent_message": ("AgentMessagePayload", "delta"),
    "tool_call": ("ToolCallPayload", "tool_call"),
    "kb_retrieval": ("KbRetrievalPayload", "kb_retrieval"),
}


def is_stream_item(instance: Any) -> bool:
    """One dispatched event as Schemathesis validates it: `{event, data, id?, retry?}`."""
    return isinstance(instance, dict) and "event" in instance and "data" in instance


def rule_for_stream_event(item: Any) -> tuple[str, str | None]:
    """The rule a schema violation inside one event of a session stream breaks.

    The event's own fields (a WHATWG parser's output: type, data, id, retry) are framing (SSE-2);
    anything inside `data` is the rule of that payload: `done` and `error` data are SSE-6's
    clauses, an AuditEvent's envelope SSE-3, an agent_message / tool_call / kb_retrieval payload
    SSE-4's clause of that kind. Schemathesis names only the event's whole schema when one of its
    branches fails, so the event is judged again here, part by part.
    """
    from chatconform.spec import validator

    if not is_stream_item(item):
        return "SSE-2", None
    event, data = item.get("event"), item.get("data")
    retry = item.get("retry", 0)
    if (
        not isinstance(event, str)
        or not event
        or not isinstance(data, str)
        or not isinstance(item.get("id", ""), str)
        or not (isinstance(retry, int) and retry >= 0)
    ):
        return "SSE-2", None
    if event in ("done", "error"):
        return "SSE-6", event
    try:
        parsed = json.loads(data)
    except ValueError:
        return "SSE-3", None
    if not validator("AuditEvent").is_valid(parsed):
        return "SSE-3", None
    if event in PAYLOADS:
        if parsed.get("eventType") != event:
            return "SSE-3", None
        schema_name, clause = PAYLOADS[event]
        if not validator(schema_name).is_valid(parsed.get("payload")):
            return "SSE-4", clause
    return "SSE-3", None


#: Checks whose failures are only contract decisions (C) even when their rule is documented.
C_LEVEL_CHECKS: frozenset[str] = frozenset({"unsupported_method"})


#: operationId -> the body field that names the target's agent.
AGENT_FIELDS: dict[str, str] = {"createSession": "agentId", "createChatCompletion": "model"}


def substitute_agent(operation_id: str, body: Any, agent_id: str | None) -> bool:
    """Put the target's agent id in a generated body (in place); True when it did.

    A random `agentId` / `model` only ever reaches "agent not found", so every drawn string is
    replaced by the real one; a value of the wrong type or an empty string (a negative case about
    that very field) is kept. Schemathesis's `parameters` overrides (`body.agentId`) do the same in
    its fuzzing and stateful phases but not in the coverage phase, hence this.
    """
    field = AGENT_FIELDS.get(operation_id)
    if not agent_id or field is None or not isinstance(body, dict):
        return False
    value = body.get(field)
    if isinstance(value, str) and value and value != agent_id:
        body[field] = agent_id
        return True
    return False
