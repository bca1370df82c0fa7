"""JSON encoding of every answer, with the ``extra`` variation (unknown fields in every object)."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from chatconform.reference.faults import Switches

EXTRA_KEY = "xFlowyteExtra"
_OPAQUE = frozenset({"arguments", "output"})  # caller data, left as is


def with_extra(value: Any) -> Any:
    """``value`` with an unknown field added to every JSON object (but not inside caller data)."""
    if isinstance(value, dict):
        out = {k: (v if k in _OPAQUE else with_extra(v)) for k, v in value.items()}
        out[EXTRA_KEY] = "unknown field, ignore me"
        return out
    if isinstance(value, list):
        return [with_extra(v) for v in value]
    return value


def dumps(value: Any, switches: Switches, indent: int | None = None) -> str:
    """Compact UTF-8-friendly JSON text (non-ASCII kept), extra fields added if switched on."""
    if switches.has("extra"):
        value = with_extra(value)
    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(value, ensure_ascii=False, separators=separators, indent=indent)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: escape them, still valid JSON
        text = json.dumps(value, ensure_ascii=True, separators=separators, indent=indent)
    return text


def dumps_bytes(value: Any, switches: Switches) -> bytes:
    return dumps(value, switches).encode("utf-8")


def json_response(value: Any, switches: Switches, status: int = 200) -> Response:
    """A plain ``application/json`` answer."""
    return Response(dumps_bytes(value, switches), status_code=status, media_type="application/json")


def envelope(data: Any, switches: Switches, status: int = 200, **extra: Any) -> Response:
    """The session API's success envelope (ENV-1): ``{"success": true, "data": …}``."""
    return json_response({"success": True, "data": data, **extra}, switches, status)
