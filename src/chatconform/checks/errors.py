"""ERR-1..4, ENV-1 and OAI-7: how every response is wrapped or explained."""

from __future__ import annotations

import json

from chatconform.checks.common import finding, short
from chatconform.record import Exchange
from chatconform.verdicts import Finding, Outcome, judged

PROBLEM_TYPE_PREFIX = "https://docs.flowyte.com/errors/"


def problem(ex: Exchange, rule: str = "ERR-1") -> list[Finding]:
    """ERR-1: a 4xx/5xx is application/problem+json with status, title, detail, type, code."""
    if ex.status is None or ex.status < 400:
        return []
    if ex.media_type != "application/problem+json":
        return [
            finding(
                rule,
                f"Content-Type application/problem+json on a {ex.status}",
                f"Content-Type {ex.headers.get('content-type', '(none)')!r}",
                ex,
            )
        ]
    body = ex.json()
    if not isinstance(body, dict):
        return [finding(rule, "a JSON object problem body", ex.describe(), ex)]
    out: list[Finding] = []
    if body.get("status") != ex.status:
        out.append(
            finding(rule, f"problem status {ex.status}", f"status {body.get('status')!r}", ex)
        )
    for member in ("title", "detail", "code"):
        if not isinstance(body.get(member), str) or not body.get(member):
            out.append(finding(rule, f"a non-empty string `{member}`", short(body), ex))
    ptype = body.get("type")
    if not (
        isinstance(ptype, str) and (ptype == "about:blank" or ptype.startswith(PROBLEM_TYPE_PREFIX))
    ):
        out.append(
            finding(rule, f"`type` about:blank or {PROBLEM_TYPE_PREFIX}<code>", f"{ptype!r}", ex)
        )
    return out


def validation_error(ex: Exchange, fields: tuple[str, ...]) -> Outcome:
    """ERR-2: 400, code validation_error, errors[] of {field, message} naming the field(s).
    The body is read only when it is a problem object (else that is ERR-1's failure, once)."""
    out = Outcome()
    if ex.status is None:
        return out.add(finding("ERR-2", "HTTP 400 for an invalid body", ex.describe(), ex))
    out.saw("ERR-2")
    if ex.status != 400:
        return out.add(finding("ERR-2", "HTTP 400 for an invalid body", ex.describe(), ex))
    if problem(ex):
        why = f"not judged: see ERR-1 on {ex.method} {ex.url} (no problem object to read)"
        return Outcome().not_exercised("ERR-2", None, why)
    body = ex.json()
    if not isinstance(body, dict):
        return out.add(finding("ERR-2", "a problem body", ex.describe(), ex))
    if body.get("code") != "validation_error":
        out.append(finding("ERR-2", 'code "validation_error"', f"code {body.get('code')!r}", ex))
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors:
        return out.add(finding("ERR-2", "a non-empty errors[] array", short(body), ex))
    named: list[str] = []
    for item in errors:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("field"), str)
            and isinstance(item.get("message"), str)
        ):
            out.append(finding("ERR-2", "errors[] items {field, message}", short(item), ex))
            continue
        named.append(item["field"])
    for want in fields:
        if not any(_names_field(n, want) for n in named):
            out.append(finding("ERR-2", f"errors[] naming the field {want!r}", f"{named}", ex))
    return out


def _names_field(named: str, want: str) -> bool:
    if not want:  # the body as a whole (invalid JSON): any field name will do
        return True
    norm = named.replace("/", ".").lstrip(".$")
    return norm == want or norm.endswith("." + want) or norm.startswith(want + "[")


def no_server_error(ex: Exchange) -> list[Finding]:
    """ERR-4: no request built from the contract's schemas gets a 5xx."""
    if ex.status is not None and ex.status >= 500:
        return [finding("ERR-4", "no 5xx for a request built from the schemas", ex.describe(), ex)]
    return []


def retry_after(ex: Exchange) -> list[Finding]:
    """ERR-3: a 429 carries Retry-After."""
    if ex.status == 429 and "retry-after" not in ex.headers:
        return [finding("ERR-3", "a Retry-After header on 429", "no Retry-After", ex)]
    return []


def envelope(ex: Exchange) -> list[Finding]:
    """ENV-1: a 2xx JSON response of the session API is {"success": true, "data": ...}."""
    if ex.status is None or not 200 <= ex.status < 300 or ex.status == 204:
        return []
    if ex.stream is not None or ex.media_type == "text/event-stream":
        return []  # a stream's shape is SSE-1's business
    if ex.media_type != "application/json":
        got = f"Content-Type {ex.headers.get('content-type', '(none)')!r}"
        return [finding("ENV-1", "an application/json envelope", got, ex)]
    body = ex.json()
    if not isinstance(body, dict) or body.get("success") is not True or "data" not in body:
        return [finding("ENV-1", '{"success": true, "data": …}', short(body) or ex.describe(), ex)]
    extra: list[Finding] = []
    if "message" in body and not isinstance(body["message"], str):
        extra.append(finding("ENV-1", "`message` a string", short(body["message"]), ex))
    if "errors" in body and not isinstance(body["errors"], list):
        extra.append(finding("ENV-1", "`errors` an array", short(body["errors"]), ex))
    return extra


def openai_error(ex: Exchange) -> list[Finding]:
    """OAI-7: errors of /chat/completions also carry error: {message, type, code}."""
    if ex.status is None or ex.status < 400:
        return []
    body = ex.json()
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or not all(k in err for k in ("message", "type", "code")):
        return [finding("OAI-7", 'an "error": {message, type, code} member', short(body), ex)]
    if not isinstance(err.get("message"), str):
        return [finding("OAI-7", "error.message a string", short(err), ex)]
    return []


def is_session_api(ex: Exchange) -> bool:
    return "/chat/sessions" in ex.url


def is_completions(ex: Exchange) -> bool:
    return ex.url.split("?", 1)[0].endswith("/chat/completions")


def asked_stream(ex: Exchange) -> bool:
    """The request asked for an event stream (its reply's shape is SSE-1's business, not ENV-1's)."""
    try:
        body = json.loads(ex.request_body) if ex.request_body else None
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("stream") is True


def envelope_applies(ex: Exchange) -> bool:
    """ENV-1's scope: a plain (not streamed) response of the session API."""
    return is_session_api(ex) and ex.stream is None and not asked_stream(ex)


def every_response(ex: Exchange) -> Outcome:
    """The checks that hold for every response a test provokes (run by the plugin on each), with
    the rules each one examined on this exchange."""
    out = Outcome()
    if ex.status is None:
        return out
    out += judged(no_server_error(ex), "ERR-4")
    broke_err1 = False
    if ex.status >= 400:
        shape = problem(ex)
        broke_err1 = bool(shape)
        out += judged(shape, "ERR-1")
    if ex.status == 429:
        out += judged(retry_after(ex), "ERR-3")
    if envelope_applies(ex) and 200 <= ex.status < 300 and ex.status != 204:
        out += judged(envelope(ex), "ENV-1")
    if is_completions(ex) and ex.status >= 400:
        if broke_err1 and openai_error(ex):
            out.not_exercised("OAI-7", None, "not judged: see ERR-1 on this response")
        else:
            out += judged(openai_error(ex), "OAI-7")
    return out
