"""Load `specs/chat-api.yaml` and hand out JSON Schema validators for its components.

The OpenAPI document is the one artefact the checking side and the reference server share
(besides the contract). This module only reads it:

- `SPEC_PATH`: the document, from a checkout (`<repo>/specs/chat-api.yaml`) or, when installed
  from a wheel, from `chatconform/_bundled/specs/chat-api.yaml` next to this package;
- `load_spec()`: the parsed document (cached; treat it as read-only);
- `schema(name)`: a self-contained Draft 2020-12 schema for `components.schemas[name]` (the
  component schemas are embedded, so every `$ref` resolves without the rest of the document);
- `validator(name)`: a cached validator for it, with `date-time` and `uri` format checking and
  `contentSchema` applied to JSON strings (so an event-stream item schema checks its `data`).
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.protocols import Validator

__all__ = [
    "SPEC_PATH",
    "load_spec",
    "schema",
    "schema_names",
    "validator",
]

_CHECKOUT_SPEC = Path(__file__).resolve().parents[2] / "specs" / "chat-api.yaml"
_BUNDLED_SPEC = Path(__file__).resolve().parent / "_bundled" / "specs" / "chat-api.yaml"


def _find_spec() -> Path:
    for candidate in (_CHECKOUT_SPEC, _BUNDLED_SPEC):
        if candidate.is_file():
            return candidate
    return _CHECKOUT_SPEC


SPEC_PATH: Path = _find_spec()

_JSON_MEDIA_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json\s*(?:;.*)?$", re.IGNORECASE)
_RFC3339_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$")

_FORMAT_CHECKER = FormatChecker(formats=())


@_FORMAT_CHECKER.checks("date-time")
def _is_date_time(instance: object) -> bool:
    """RFC 3339 `date-time` (a leap second `:60` is accepted)."""
    if not isinstance(instance, str):
        return True
    match = _RFC3339_DATE_TIME.match(instance)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    offset = match.group(8)
    if offset not in ("Z", "z") and (int(offset[1:3]) > 23 or int(offset[4:6]) > 59):
        return False
    try:
        datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    return second <= 60


@_FORMAT_CHECKER.checks("uri")
def _is_uri(instance: object) -> bool:
    """An absolute URI (scheme, colon, no whitespace), e.g. `about:blank` or `https://…`."""
    return not isinstance(instance, str) or _URI.match(instance) is not None


def _content_schema(
    validator: Validator, content_schema: Any, instance: Any, schema: dict[str, Any]
) -> Any:
    """Apply `contentSchema` to a string whose `contentMediaType` is JSON (an assertion here)."""
    media_type = schema.get("contentMediaType")
    if not isinstance(instance, str) or not isinstance(media_type, str):
        return
    if not _JSON_MEDIA_TYPE.match(media_type):
        return
    try:
        decoded = json.loads(instance)
    except ValueError as exc:
        yield ValidationError(f"{instance[:80]!r} is not valid JSON ({exc})")
        return
    yield from validator.descend(decoded, content_schema, schema_path="contentSchema")


# No `version=`: that would register this class globally for the 2020-12 meta-schema.
_ChatValidator = validators.extend(
    Draft202012Validator,
    {"contentSchema": _content_schema},
    format_checker=_FORMAT_CHECKER,
)
_ChatValidator.__name__ = _ChatValidator.__qualname__ = "ChatconformDraft202012Validator"


@cache
def load_spec() -> dict[str, Any]:
    """The parsed OpenAPI document (cached: do not mutate it)."""
    with SPEC_PATH.open(encoding="utf-8") as fh:
        # libyaml's loader when PyYAML has it: the same document, 5x less CPU at every start
        document = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(document, dict):
        raise ValueError(f"{SPEC_PATH} is not an OpenAPI document")
    check_rule_ids(document)
    return document


def check_rule_ids(node: Any, where: str = "#") -> None:
    """Every `x-rules` id in the document is a registered rule (rules.UnknownRule names the place)."""
    from chatconform.rules import UnknownRule, rule

    if isinstance(node, dict):
        for key, value in node.items():
            if key == "x-rules":
                for rid in value if isinstance(value, list) else [value]:
                    try:
                        rule(str(rid))
                    except UnknownRule as exc:
                        raise UnknownRule(f"{SPEC_PATH} at {where}: {exc}") from None
            else:
                check_rule_ids(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_rule_ids(value, f"{where}/{i}")


def schema_names() -> list[str]:
    """The names of the component schemas, in document order."""
    return list(load_spec().get("components", {}).get("schemas", {}))


def schema(name: str) -> dict[str, Any]:
    """A self-contained JSON Schema (Draft 2020-12) for the component schema `name`.

    The document's component schemas are embedded under `components.schemas`, so the
    `#/components/schemas/…` references inside them resolve against the returned schema itself.
    """
    schemas = load_spec().get("components", {}).get("schemas", {})
    if name not in schemas:
        raise KeyError(f"no component schema named {name!r} in {SPEC_PATH}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/components/schemas/{name}",
        "components": {"schemas": copy.deepcopy(schemas)},
    }


@cache
def validator(name: str) -> Validator:
    """A cached Draft 2020-12 validator for the component schema `name`.

    Formats `date-time` (RFC 3339) and `uri` are asserted; `contentSchema` is applied to strings
    whose `contentMediaType` is JSON, so `validator("ChatStreamEvent")` checks an event's `data`.
    """
    return _ChatValidator(schema(name), format_checker=_FORMAT_CHECKER)


def _refs_closure(name: str) -> list[Any]:
    """The component schema `name` and every component schema it reaches through `$ref`."""
    schemas = load_spec().get("components", {}).get("schemas", {})
    seen: dict[str, Any] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in schemas:
            continue
        seen[current] = schemas[current]
        text = json.dumps(schemas[current])
        todo += re.findall(r'"#/components/schemas/([^"]+)"', text)
    return list(seen.values())


@cache
def fast_validator(name: str) -> Any | None:
    """A compiled (jsonschema_rs) validator for `name`, used only to confirm that an instance is
    valid; None when it cannot be as strict as `validator(name)`.

    Every check still takes its findings from `validator(name)`: this one is a fast path for the
    common case, a valid instance (the load users judge every frame of every stream). It asserts
    at least what `validator(name)` asserts: the same Draft 2020-12 keywords, `date-time` and
    `uri` through the same functions, every other known format too (stricter, so an instance it
    refuses is simply judged by `validator(name)`). Schemas that reach `contentSchema` (which it
    would only annotate) get no fast path.
    """
    try:
        import jsonschema_rs
    except ImportError:
        return None
    if any("contentSchema" in json.dumps(s) for s in _refs_closure(name)):
        return None
    try:
        return jsonschema_rs.validator_for(
            schema(name),
            validate_formats=True,
            ignore_unknown_formats=True,
            formats={"date-time": _is_date_time, "uri": _is_uri},
        )
    except Exception:  # a schema it cannot compile: the Python validator judges alone
        return None


def fast_valid(name: str, instance: Any) -> bool:
    """True only when the fast path confirms `instance` is valid (False means: ask validator())."""
    fast = fast_validator(name)
    return fast is not None and bool(fast.is_valid(instance))
