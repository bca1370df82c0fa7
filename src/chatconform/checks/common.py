"""Small builders shared by the checks."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from chatconform.record import Exchange
from chatconform.rules import RULES, Level
from chatconform.verdicts import Finding, Outcome


def finding(
    rule: str,
    expected: str,
    got: str,
    ex: Exchange | None = None,
    level: Level | None = None,
    clause: str | None = None,
) -> Finding:
    kind = "budget" if ex is not None and ex.unjudged else "target"
    return Finding(rule, expected, got, level=level, exchange=ex, kind=kind, clause=clause)


def short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def expect_status(
    ex: Exchange,
    rule: str,
    allowed: int | Iterable[int],
    level: Level | None = None,
    clause: str | None = None,
) -> Outcome:
    """The response's status is one of `allowed` (examined whenever a response came back)."""
    statuses = (allowed,) if isinstance(allowed, int) else tuple(allowed)
    out = Outcome()
    if ex.status is not None:
        out.saw(rule, clause)
    if ex.status in statuses:
        return out
    want = " or ".join(str(s) for s in statuses)
    return out.add(
        finding(rule, f"HTTP {want} for {ex.method} {ex.url}", ex.describe(), ex, level, clause)
    )


def expect_problem_code(
    ex: Exchange,
    rule: str,
    status: int,
    code: str,
    level: Level | None = None,
    clause: str | None = None,
) -> Outcome:
    """The status (at the rule's level) and then the problem's `code` (a C detail unless told).

    When the response already broke ERR-1 (it is no problem+json object), the code is not judged:
    that is ERR-1's failure, reported once, and this rule says "not judged: see ERR-1".
    """
    found = expect_status(ex, rule, status, level, clause)
    if len(found):
        return found
    basic = basic_failure(ex)
    if basic is not None:
        why = f"not judged: see {basic} on {ex.method} {ex.url} (no problem object to read a code from)"
        return Outcome().not_exercised(rule, clause, why)
    body = ex.json()
    got = body.get("code") if isinstance(body, dict) else None
    if got != code:
        found.add(
            finding(rule, f'problem code "{code}"', f"code {got!r}", ex, level or "C", clause)
        )
    return found


def basic_failure(ex: Exchange) -> str | None:
    """The more basic rule this response already broke, on which reading its body depends:
    ERR-1 (an error that is no problem+json object) or ENV-1 (a success without its envelope)."""
    from chatconform.checks.errors import envelope, envelope_applies, problem

    if ex.status is None:
        return None
    if ex.status >= 400 and problem(ex):
        return "ERR-1"
    if 200 <= ex.status < 300 and envelope_applies(ex) and envelope(ex):
        return "ENV-1"
    return None


def data_of(ex: Exchange) -> Any:
    """The `data` member of an enveloped body (None when absent; ENV-1 reports the envelope)."""
    body = ex.json()
    return body.get("data") if isinstance(body, dict) else None


def schema_findings(
    instance: Any, schema: str, rule: str, ex: Exchange | None, where: str, level: Level | None
) -> Outcome:
    """`instance` against a schema of the spec (examined once, for `rule`)."""
    from chatconform.spec import fast_valid, validator

    out = Outcome()
    if len(RULES[rule].clauses) == 1:
        out.saw(rule)
    if fast_valid(schema, instance):  # the common case, confirmed fast; findings come from below
        return out
    errors = sorted(validator(schema).iter_errors(instance), key=lambda e: list(e.path))
    if not errors:
        return out
    first = errors[0]
    path = "/".join(str(p) for p in first.absolute_path) or "(root)"
    got = f"{where} at {path}: {first.message}"
    if len(errors) > 1:
        got += f" (+{len(errors) - 1} more)"
    return out.add(finding(rule, f"{where} to be a valid {schema}", short(got, 400), ex, level))


def schema_errors(
    instance: Any, schema: str, rule: str, ex: Exchange | None, where: str, level: Level | None
) -> list[Finding]:
    """Only the findings of :func:`schema_findings`, for a caller that counts the evidence itself
    (once per stream): a valid instance confirmed by the fast path builds no Outcome at all."""
    from chatconform.spec import fast_valid

    if fast_valid(schema, instance):
        return []
    return list(schema_findings(instance, schema, rule, ex, where, level))


def key_of(value: Any) -> str:
    """A hashable, comparable key for any JSON value (ids are opaque and may be anything)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
