"""Send one streamed request and turn what came back into a Timeline.

The read is ``load.h1reader``'s: a lean HTTP/1.1 client (``load.h1``; cooperative under Locust's
gevent monkey-patching) hands over each socket read as it comes, stamped with its arrival time
(the kernel's receive time where it gives one), to the project's one SSE parser; the whole
exchange is bounded, headers included (connect/read timeouts, a whole-exchange deadline, a byte
cap). The Exchange it records is what the conformance checks judge (the suites' own checks, on
the same parse) and what the timeline is read from.
"""

from __future__ import annotations

import json
import time
from typing import Any

from chatconform import __version__
from chatconform.load.h1 import H1Client
from chatconform.load.h1reader import read_exchange
from chatconform.load.timeline import (
    CENSORED,
    CLASSIFIERS,
    HTTP_ERROR,
    INCOMPLETE,
    TRANSPORT_ERROR,
    Timeline,
    usage_tokens,
)
from chatconform.record import Exchange, excerpt
from chatconform.target import Target
from chatconform.tls import verifying_context

now = time.perf_counter_ns


def make_client(target: Target, connections: int) -> H1Client:
    """A keep-alive pool of ``connections`` connections, every operation bounded."""
    headers = {
        "Authorization": f"Bearer {target.api_key or ''}",
        "Accept-Encoding": "identity",
        "User-Agent": f"chatconform-load/{__version__}",
    }
    https = target.base_url.lower().startswith("https:")
    return H1Client(target.base_url, headers, connections, target.limits.timeout,
                    verifying_context() if https else None)  # fmt: skip


def _exchange(
    client: H1Client, method: str, url: str, headers: dict[str, str], content: bytes | None
) -> Exchange:
    """The Exchange of a request as it goes on the wire (the client's headers included)."""
    sent = dict(client.headers)
    sent.update(headers)
    return Exchange(method, url, sent, content)


def call_json(
    client: H1Client, target: Target, method: str, path: str, body: Any = None
) -> tuple[int | None, Any, str | None, float]:
    """A plain JSON call (session create/end): (status, parsed body, error, elapsed ms)."""
    t0 = now()
    content = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if content is not None else {}
    ex = _exchange(client, method, target.url(path), headers, content)
    read_exchange(client, ex, target.limits, target.redact)
    elapsed = (now() - t0) / 1e6
    if ex.status is None:
        return None, None, ex.error, elapsed
    return ex.status, ex.json(), ex.error, elapsed


def stream_exchange(
    tl: Timeline, client: H1Client, target: Target, path: str, body: dict[str, Any]
) -> Exchange:
    """POST ``body`` to ``path`` expecting an event stream; the timeline is filled from it.

    A BaseException (the run stopping: GreenletExit, KeyboardInterrupt) while the request is in
    flight marks the timeline CENSORED with its elapsed time, then propagates.
    """
    ex = send_stream(tl, client, target, path, body)
    observe(tl, ex)
    return ex


def send_stream(
    tl: Timeline, client: H1Client, target: Target, path: str, body: dict[str, Any]
) -> Exchange:
    """:func:`stream_exchange` up to the recorded Exchange: the timeline has its send time (or
    is CENSORED on a BaseException, which propagates); :func:`observe` fills the rest."""
    content = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    ex = _exchange(client, "POST", target.url(path), headers, content)
    tl.t_sent = now()
    if tl.t_dispatch is None:
        tl.t_dispatch = tl.t_sent
    try:
        read_exchange(client, ex, target.limits, target.redact)
    except Exception as exc:  # a harness bug or an exotic failure: record it, never crash the user
        ex.error = f"{type(exc).__name__}: {exc}"[:300]
        ex.t_end_ns = now()
    except BaseException:  # GreenletExit, KeyboardInterrupt: the run is stopping
        tl.outcome = CENSORED
        tl.t_close = now()
        tl.error = "the run ended while the request was in flight"
        raise
    return ex


def observe(tl: Timeline, ex: Exchange) -> None:
    """Fill ``tl`` from a finished exchange: timestamps, events, outcome, output tokens."""
    tl.t_sent = ex.t_start_ns
    tl.t_headers = ex.t_headers_ns
    tl.t_close = ex.t_end_ns
    tl.status = ex.status
    if ex.status is None:
        tl.outcome = TRANSPORT_ERROR
        tl.error = (ex.error or "no response")[:300]
        return
    if ex.status != 200 or ex.stream is None:
        tl.outcome = HTTP_ERROR
        tl.bytes = len(ex.body)
        ctype = ex.media_type or "(no content-type)"
        tl.error = f"HTTP {ex.status} {ctype}: " + excerpt(ex.body, 300)
        return
    rec = ex.stream
    tl.bytes = rec.parser.bytes_seen
    # one JSON parse per event, shared with the conformance checks (StreamRecord.parsed)
    tl.on_events(rec.events, CLASSIFIERS[tl.endpoint], rec.parsed())
    if tl.endpoint == "completions":
        tl.usage_tokens = usage_tokens(rec.events)
        tl.response_id = response_id(rec.parsed())
    else:
        tl.recv_lag_ms = receive_lag_ms(rec.events)
    if tl.t_terminal is None:
        tl.outcome = INCOMPLETE
        tl.error = ex.error or (
            f"no terminal frame ({len(tl.content)} deltas, ended by {rec.ended_by})"
        )
        tl.error = tl.error[:300]


MAX_ID_CHARS = 128


def response_id(parsed: list[Any]) -> str | None:
    """The first chunk's ``id`` (OpenAI's ``chatcmpl-…``), to find the request in the server's
    logs; None when the first JSON chunk has none (cut to ``MAX_ID_CHARS``)."""
    for data in parsed:
        if isinstance(data, dict):
            rid = data.get("id")
            return rid[:MAX_ID_CHARS] if isinstance(rid, str) else None
    return None


def receive_lag_ms(events: list[Any]) -> float | None:
    """The largest (receive time − the frame's ``tsMs``) over a session stream's content frames.

    The server stamps each AuditEvent when it builds it; the client stamps each read when it
    arrives: the difference is the server's send path, the network and the client's own delay
    in reading, so it measures the measurement (meaningful on one host, or with synced clocks;
    ``tsMs`` has millisecond resolution).
    """
    offset_ns = time.time_ns() - time.perf_counter_ns()
    worst: float | None = None
    for ev in events:
        if ev.type != "agent_message" or '"tsMs"' not in ev.data:
            continue
        try:
            ts = json.loads(ev.data).get("tsMs")
        except (ValueError, AttributeError):
            continue
        if isinstance(ts, int) and not isinstance(ts, bool):
            lag = (ev.t_ns + offset_ns) / 1e6 - ts
            worst = lag if worst is None else max(worst, lag)
    return None if worst is None else round(worst, 3)
