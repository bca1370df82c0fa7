"""Small builders shared by the checks."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from chatconform.record import Exchange
from chatconform.rules import Level
from chatconform.verdicts import Finding


def finding(
    rule: str, expected: str, got: str, ex: Exchange | None = None, level: Level | None = None
) -> Finding:
    return Finding(rule=rule, expected=expected, got=got, level=level, exchange=ex)


def short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def expect_status(
    ex: Exchange, rule: str, allowed: int | Iterable[int], level: Level | None = None
) -> list[Finding]:
    statuses = (allowed,) if isinstance(allowed, int) else tuple(allowed)
    if ex.status in statuses:
        return []
    want = " or ".join(str(s) for s in statuses)
    return [finding(rule, f"HTTP {want} for {ex.method} {ex.url}", ex.describe(), ex, level)]


def expect_problem_code(
    ex: Exchange, rule: str, status: int, code: str, level: Level | None = None
) -> list[Finding]:
    """The status (at the rule's level) and then the problem's `code` (a C detail unless told)."""
    found = expect_status(ex, rule, status, level)
    if found:
        return found
    body = ex.json()
    got = body.get("code") if isinstance(body, dict) else None
    if got != code:
        return [finding(rule, f'problem code "{code}"', f"code {got!r}", ex, level or "C")]
    return []


def data_of(ex: Exchange) -> Any:
    """The `data` member of an enveloped body (None when absent; ENV-1 reports the envelope)."""
    body = ex.json()
    return body.get("data") if isinstance(body, dict) else None


def schema_findings(
    instance: Any, schema: str, rule: str, ex: Exchange | None, where: str, level: Level | None
) -> list[Finding]:
    from chatconform.spec import validator

    errors = sorted(validator(schema).iter_errors(instance), key=lambda e: list(e.path))
    if not errors:
        return []
    first = errors[0]
    path = "/".join(str(p) for p in first.absolute_path) or "(root)"
    got = f"{where} at {path}: {first.message}"
    if len(errors) > 1:
        got += f" (+{len(errors) - 1} more)"
    return [finding(rule, f"{where} to be a valid {schema}", short(got, 400), ex, level)]


def key_of(value: Any) -> str:
    """A hashable, comparable key for any JSON value (ids are opaque and may be anything)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
