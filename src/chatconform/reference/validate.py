"""Request parsing and field validation: every malformed input becomes a 400 validation_error."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from chatconform.reference.faults import Switches
from chatconform.reference.problems import ApiError, validation_error

MAX_BODY = 1024 * 1024
MAX_CONTENT = 32_000


async def read_body(request: Request) -> bytes:
    """The raw body, refusing more than :data:`MAX_BODY` bytes with a 413."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, "payload_too_large", f"the body exceeds {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_object(
    request: Request,
    switches: Switches,
    required: bool,
    if_invalid: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The body as a JSON object; an absent body is ``{}`` unless ``required``.

    ``if_invalid``: what a body that is not valid JSON stands for (a fault), instead of a 400.
    """
    raw = await read_body(request)
    if not raw.strip():
        if required:
            raise validation_error("body", "a JSON object body is required")
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        if if_invalid is not None:
            return dict(if_invalid)
        if switches.fault_is("invalid-json-500"):
            raise ApiError(
                500, "internal_error", "the server failed to process the request"
            ) from exc
        raise validation_error("body", "the body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise validation_error("body", "the body must be a JSON object")
    return value


def is_unicode(text: str) -> bool:
    """True when ``text`` is encodable as UTF-8 (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def optional_bool(body: dict[str, Any], name: str, default: bool, allow_null: bool = False) -> bool:
    """A boolean field (absent: ``default``)."""
    value = body.get(name)
    if name not in body or (value is None and allow_null):
        return default
    if not isinstance(value, bool):
        raise validation_error(name, "must be a boolean")
    return value


def required_string(body: dict[str, Any], name: str) -> str:
    """A required, non-empty string field (valid Unicode)."""
    if name not in body:
        raise validation_error(name, "is required")
    value = body[name]
    if not isinstance(value, str):
        raise validation_error(name, "must be a string")
    if not value:
        raise validation_error(name, "must not be empty")
    if not is_unicode(value):
        raise validation_error(name, "must be valid Unicode text")
    return value
