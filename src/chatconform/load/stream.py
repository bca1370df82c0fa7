"""Send one request and read its event stream as bytes arrive, filling a Timeline.

httpx (sync; cooperative under Locust's gevent monkey-patching) hands over each socket read
as it comes (``iter_raw``), unlike ``FastHttpSession.iter_lines`` which gathers ~1 KB blocks.
Every request is bounded: connect/read/pool timeouts (``Limits.timeout``), a whole-stream
deadline (``Limits.stream_timeout``) and a byte cap (``Limits.max_body_bytes``).
"""

from __future__ import annotations

import json
import ssl
import time
from functools import cache
from typing import Any

import httpx

from chatconform.load.timeline import (
    CANCELLED,
    CLASSIFIERS,
    HTTP_ERROR,
    INCOMPLETE,
    TRANSPORT_ERROR,
    Timeline,
)
from chatconform.record import StreamRecord
from chatconform.target import Target

ERROR_BODY_BYTES = 2048
now = time.perf_counter_ns


@cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying SSL context per process: building one costs ~25 ms of blocking CPU, which
    per user would stall the gevent hub for seconds while hundreds of users spawn."""
    return httpx.create_ssl_context()


def make_client(target: Target, connections: int) -> httpx.Client:
    """A keep-alive pool of ``connections`` connections, every operation bounded."""
    t = target.limits.timeout
    return httpx.Client(
        verify=_ssl_context(),
        timeout=httpx.Timeout(t, pool=t),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        headers={"Authorization": f"Bearer {target.api_key or ''}", "Accept-Encoding": "identity"},
        follow_redirects=False,
    )


def call_json(
    client: httpx.Client, target: Target, method: str, path: str, body: Any = None
) -> tuple[int | None, Any, str | None, float]:
    """A plain JSON call (session create/end): (status, parsed body, error, elapsed ms)."""
    t0 = now()
    try:
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if content is not None else {}
        response = client.request(method, target.url(path), content=content, headers=headers)
    except httpx.HTTPError as exc:
        return None, None, f"{type(exc).__name__}: {exc}", (now() - t0) / 1e6
    elapsed = (now() - t0) / 1e6
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    return response.status_code, parsed, None, elapsed


def stream_into(
    tl: Timeline, client: httpx.Client, target: Target, path: str, body: dict[str, Any]
) -> Timeline:
    """POST ``body`` to ``path`` expecting an event stream; record everything into ``tl``."""
    classify = CLASSIFIERS[tl.endpoint]
    lim = target.limits
    request = client.build_request(
        "POST",
        target.url(path),
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
    )
    tl.t_sent = now()
    if tl.t_dispatch is None:
        tl.t_dispatch = tl.t_sent
    deadline = tl.t_sent + int(lim.stream_timeout * 1e9)
    try:
        try:
            response = client.send(request, stream=True)
        except httpx.HTTPError as exc:
            tl.outcome = TRANSPORT_ERROR
            tl.error = f"{type(exc).__name__}: {exc}"[:300]
            return tl
        try:
            tl.t_headers = now()
            tl.status = response.status_code
            ctype = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if response.status_code != 200 or ctype != "text/event-stream":
                tl.outcome = HTTP_ERROR
                tl.error = f"HTTP {response.status_code} {ctype}: " + _head(response)
                return tl
            _read(tl, response, classify, deadline, lim.max_body_bytes)
        finally:
            response.close()
    except Exception as exc:  # a bug or an exotic failure: record it, never crash the user
        tl.outcome = TRANSPORT_ERROR if tl.t_headers is None else INCOMPLETE
        tl.error = f"{type(exc).__name__}: {exc}"[:300]
    except BaseException:  # GreenletExit, KeyboardInterrupt: the run is stopping
        if tl.t_terminal is None:
            tl.outcome = CANCELLED
        raise
    finally:
        tl.t_close = now()
    return tl


def _read(tl: Timeline, response: httpx.Response, classify: Any, deadline: int, cap: int) -> None:
    record = StreamRecord()
    ended_by = "eof"
    try:
        for chunk in response.iter_raw():
            t = now()
            tl.bytes += len(chunk)
            done = tl.on_events(record.feed(chunk, t), classify)
            if tl.bytes > cap:
                ended_by = "byte-cap"
                if not done:
                    tl.error = f"stream exceeded {cap} bytes"
                break
            if t > deadline:
                ended_by = "timeout"
                if not done:
                    tl.error = "stream still open at the stream deadline"
                break
    except httpx.HTTPError as exc:
        ended_by = "transport-error"
        if tl.t_terminal is None:
            tl.error = f"{type(exc).__name__} after {len(tl.content)} deltas: {exc}"[:300]
    record.close(ended_by)
    if tl.t_terminal is None:
        tl.outcome = INCOMPLETE
        if tl.error is None:
            tl.error = f"no terminal frame ({len(tl.content)} deltas, ended by {ended_by})"


def _head(response: httpx.Response) -> str:
    """The start of an error body, bounded."""
    got = bytearray()
    try:
        for chunk in response.iter_raw():
            got += chunk
            if len(got) >= ERROR_BODY_BYTES:
                break
    except httpx.HTTPError:
        pass
    return bytes(got[:300]).decode("utf-8", "replace")
