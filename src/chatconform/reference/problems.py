"""Errors as RFC 9457 problem+json (ERR-1), with an OpenAI-style ``error`` member on completions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from starlette.responses import Response

from chatconform.reference.faults import Switches
from chatconform.reference.jsonio import dumps_bytes

TYPE_BASE = "https://docs.flowyte.com/errors/"

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    429: "rate_limit_error",
}


@dataclass
class ApiError(Exception):
    """An error answer: raised anywhere in a handler, rendered by :func:`problem_response`."""

    status: int
    code: str
    detail: str
    errors: list[dict[str, str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.detail}"


def validation_error(field_name: str, message: str) -> ApiError:
    """A 400 ``validation_error`` naming one offending field."""
    return ApiError(400, "validation_error", f"{field_name or 'body'}: {message}",
                    [{"field": field_name, "message": message}])  # fmt: skip


def problem_body(err: ApiError, completions: bool) -> dict[str, Any]:
    """The problem object of ``err`` (plus ``error`` for /chat/completions).

    ``instance`` names this occurrence (a fresh URN): it never echoes the request's ids, so a
    404 for another organization's session leaks nothing of it.
    """
    body: dict[str, Any] = {
        "type": TYPE_BASE + err.code,
        "title": HTTPStatus(err.status).phrase,
        "status": err.status,
        "detail": err.detail,
        "code": err.code,
    }
    body["instance"] = "urn:uuid:" + str(uuid.uuid4())
    if err.errors is not None:
        body["errors"] = err.errors
    if completions:
        kind = _OPENAI_TYPES.get(
            err.status, "api_error" if err.status >= 500 else "invalid_request_error"
        )
        body["error"] = {"message": err.detail, "type": kind, "code": err.code}
    return body


def problem_response(err: ApiError, switches: Switches, completions: bool = False) -> Response:
    """The answer for ``err``: problem+json (plain JSON under the plain-json-errors fault)."""
    media = (
        "application/json" if switches.fault_is("plain-json-errors") else "application/problem+json"
    )
    body = problem_body(err, completions)
    headers = dict(err.headers)
    return Response(
        dumps_bytes(body, switches), status_code=err.status, headers=headers, media_type=media
    )
