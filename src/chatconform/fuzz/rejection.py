"""The contract's rejection list, read from the spec's `x-must-reject`: what a sent request breaks.

The request schemas of specs/chat-api.yaml say what a well-formed request looks like; CONTRACT.md
requires a server to refuse only some of what breaks them (ERR-2's rejection list, OAI-2's
boundary). The spec lists those per request body and query parameter (`x-must-reject`, described in
the spec's `info.description`), each with its rule and level. This module answers, for a request as
it was SENT (the recorded bytes, not what Schemathesis meant to generate), which listed constraints
it breaks. The fuzz suite then judges:

- a request that breaks a listed constraint and gets a 2xx breaks that constraint's rule;
- a request that Schemathesis generated as invalid but that breaks no listed constraint may be
  accepted: a note (level I), never WARN or FAIL; under `x-may-ignore-body` not even that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jsonschema import Draft202012Validator

from chatconform.record import Exchange
from chatconform.rules import RULES, Level, clause_of
from chatconform.spec import load_spec

BODY = "body"
#: (operationId, JSON pointer) -> the values 2xx responses of that operation carried there.
Issued = dict[tuple[str, str], set[str]]


class SpecError(ValueError):
    """An `x-must-reject` entry the harness cannot use (a mistake in the spec)."""


@dataclass(frozen=True, slots=True)
class Constraint:
    """One entry of a rejection list: a violation that must be refused, and the rule it breaks."""

    operation_id: str
    where: str  # "body", or the name of a query parameter
    rule: str
    level: Level
    when: str
    clause: str | None = None
    schema: Any = field(default=None, compare=False)
    unparsable: bool = False
    issued: str | None = None

    def describe(self) -> str:
        return f"{self.rule} ({self.level}): {self.when}"


@dataclass(frozen=True, slots=True)
class Sent:
    """What a request carried, as the constraints see it."""

    body: Any  # the parsed JSON body; _UNPARSABLE when absent or not valid JSON
    query: Mapping[str, list[str]]


_UNPARSABLE = object()


def _parse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(raw: bytes | None) -> Any:
    """The body as JSON, or `_UNPARSABLE` when absent, not UTF-8 or not valid JSON."""
    if raw is None or not raw.strip():
        return _UNPARSABLE
    try:
        return json.loads(raw.decode("utf-8-sig"), parse_constant=_parse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _UNPARSABLE


def sent(ex: Exchange) -> Sent:
    query = parse_qs(urlsplit(ex.url).query, keep_blank_values=True)
    return Sent(parse_body(ex.request_body), query)


def _operation(operation_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(path item, operation object) of `operation_id`."""
    for item in load_spec()["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                return item, op
    raise SpecError(f"no operation {operation_id!r} in the spec")


def _constraint(operation_id: str, where: str, entry: Any) -> Constraint:
    if not isinstance(entry, dict):
        raise SpecError(f"{operation_id} {where}: an x-must-reject entry must be a mapping")
    rule, level = entry.get("rule"), entry.get("level")
    if rule not in RULES:
        raise SpecError(f"{operation_id} {where}: unknown rule {rule!r} in x-must-reject")
    if level not in ("D", "C"):
        raise SpecError(f"{operation_id} {where}: level must be D or C, not {level!r}")
    clause = entry.get("clause")
    clause_of(rule, clause)  # raises on an unknown clause
    tests = [k for k in ("schema", "unparsable", "issued") if entry.get(k) not in (None, False)]
    if not tests:
        raise SpecError(f"{operation_id} {where}: an x-must-reject entry needs a test")
    schema = entry.get("schema")
    if schema is not None:
        Draft202012Validator.check_schema(schema)
    return Constraint(
        operation_id=operation_id,
        where=where,
        rule=rule,
        level=level,
        when=str(entry.get("when") or ""),
        clause=clause,
        schema=schema,
        unparsable=bool(entry.get("unparsable")),
        issued=entry.get("issued"),
    )


@cache
def constraints(operation_id: str) -> tuple[Constraint, ...]:
    """The rejection list of an operation: its body's entries, then its query parameters'."""
    item, op = _operation(operation_id)
    out: list[Constraint] = []
    body = op.get("requestBody") or {}
    for entry in body.get("x-must-reject", []):
        out.append(_constraint(operation_id, BODY, entry))
    for param in [*item.get("parameters", []), *op.get("parameters", [])]:
        if "$ref" in param or param.get("in") != "query":
            continue
        for entry in param.get("x-must-reject", []):
            out.append(_constraint(operation_id, str(param["name"]), entry))
    return tuple(out)


def declares_rejections(operation_id: str) -> bool:
    """True when the spec says what this operation must reject (an empty list counts)."""
    item, op = _operation(operation_id)
    if "x-must-reject" in (op.get("requestBody") or {}):
        return True
    params = [*item.get("parameters", []), *op.get("parameters", [])]
    return any("x-must-reject" in p for p in params if isinstance(p, dict))


@cache
def may_ignore_body(operation_id: str) -> bool:
    """`x-may-ignore-body`: any body may be accepted, without even a note."""
    _, op = _operation(operation_id)
    return bool((op.get("requestBody") or {}).get("x-may-ignore-body"))


@cache
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def _fails(schema: Any, value: Any) -> bool:
    return not _validator(json.dumps(schema, sort_keys=True)).is_valid(value)


def _pointer(doc: Any, pointer: str) -> Any:
    cur = doc
    for part in pointer.lstrip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def breaks(c: Constraint, s: Sent, issued: Issued) -> bool:
    """Does the sent request break constraint `c`?"""
    if c.where == BODY:
        if s.body is _UNPARSABLE:
            return c.unparsable
        return c.schema is not None and _fails(c.schema, s.body)
    values = s.query.get(c.where)
    if not values or len(values) > 1:
        return False  # absent (optional), or repeated: which value counts is not the contract's
    value = values[0]
    if c.schema is not None and _fails(c.schema, value):
        return True
    if c.issued is not None:
        return value not in issued.get((c.operation_id, c.issued), set())
    return False


def broken(operation_id: str, ex: Exchange, issued: Issued | None = None) -> list[Constraint]:
    """The listed constraints that the request of `ex`, as sent, breaks."""
    listed = constraints(operation_id)
    if not listed:
        return []
    s = sent(ex)
    return [c for c in listed if breaks(c, s, issued or {})]


def harvest(operation_id: str, ex: Exchange, issued: Issued) -> None:
    """Remember the values a 2xx response carried where a constraint says `issued: <pointer>`."""
    if ex.status is None or not 200 <= ex.status < 300:
        return
    pointers = {c.issued for c in constraints(operation_id) if c.issued}
    if not pointers:
        return
    body = ex.json()
    for pointer in pointers:
        value = _pointer(body, pointer)
        if isinstance(value, str):
            issued.setdefault((operation_id, pointer), set()).add(value)
