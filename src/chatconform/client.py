"""The API client: one method per operation over httpx, every call bounded in time and bytes.

Each call returns an Exchange (record.py) and appends it to the client's log, so the checks can read
every request a test made. Keys never appear in reprs; reproducers name their environment variable.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from chatconform.budget import Budget
from chatconform.record import Exchange, StreamRecord
from chatconform.target import Target


class _Default:
    def __repr__(self) -> str:
        return "<the target's API key>"


DEFAULT_KEY: Any = _Default()
USER_AGENT = "chatconform/0.1"


class Client:
    """A bounded client for one target. `key=None` sends no Authorization header."""

    def __init__(
        self, target: Target, log: list[Exchange] | None = None, budget: Budget | None = None
    ) -> None:
        self.target = target
        self.budget = budget
        self.log: list[Exchange] = log if log is not None else []
        lim = target.limits
        self._http = httpx.Client(
            timeout=httpx.Timeout(lim.timeout),
            follow_redirects=False,  # a redirect must never carry the key to another host
            # a fresh connection per exchange lets the watchdog bound it as a whole (see _Watchdog)
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": USER_AGENT},
        )

    def __repr__(self) -> str:
        return f"Client({self.target.base_url})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the operations -------------------------------------------------------------------
    def create_session(self, agent_id: Any, draft_mode: bool | None = None, **kw: Any) -> Exchange:
        body: dict[str, Any] = {"agentId": agent_id}
        if draft_mode is not None:
            body["draftMode"] = draft_mode
        return self.request("POST", "/chat/sessions", json_body=body, **kw)

    def get_session(self, session_id: str, **kw: Any) -> Exchange:
        return self.request("GET", f"/chat/sessions/{session_id}", **kw)

    def list_messages(
        self, session_id: str, limit: int | None = None, cursor: str | None = None, **kw: Any
    ) -> Exchange:
        params: dict[str, str] = {}
        if limit is not None:
            params["limit"] = str(limit)
        if cursor is not None:
            params["cursor"] = cursor
        return self.request("GET", f"/chat/sessions/{session_id}/messages", params=params, **kw)

    def post_message(
        self, session_id: str, content: str, stream: bool | None = None, **kw: Any
    ) -> Exchange:
        body: dict[str, Any] = {"content": content}
        if stream is not None:
            body["stream"] = stream
        return self.request("POST", f"/chat/sessions/{session_id}/messages", json_body=body, **kw)

    def end_session(self, session_id: str, **kw: Any) -> Exchange:
        return self.request("POST", f"/chat/sessions/{session_id}/end", **kw)

    def completion(self, body: dict[str, Any], **kw: Any) -> Exchange:
        return self.request("POST", "/chat/completions", json_body=body, **kw)

    # -- the one place a request is made ---------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        key: Any = DEFAULT_KEY,
        auth_scheme: str = "Bearer",
        headers: dict[str, str] | None = None,
        stop_after_events: int | None = None,
        on_event: Callable[[Exchange], None] | None = None,
    ) -> Exchange:
        """Send one request and record the whole response.

        A `text/event-stream` response is read as it arrives and parsed incrementally; any other
        body is read to the byte cap. `stop_after_events` drops the connection after that many
        events (a client that goes away mid-stream).
        """
        if key is DEFAULT_KEY:
            key = self.target.api_key
        req_headers: dict[str, str] = {"Accept": "application/json, text/event-stream"}
        if key is not None:
            req_headers["Authorization"] = f"{auth_scheme} {key}".strip()
        if json_body is not None:
            content = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
        if content is not None:
            req_headers["Content-Type"] = "application/json"
        if headers:
            req_headers.update(headers)
        url = self.target.url(path)
        request = self._http.build_request(
            method, url, params=params, content=content, headers=req_headers
        )
        ex = Exchange(method, str(request.url), req_headers, content)
        self.log.append(ex)
        refusal = self.budget.refusal() if self.budget is not None else None
        if refusal is not None:
            ex.error = refusal
            ex.not_sent = True
            ex.t_end_ns = ex.t_start_ns
            return ex
        try:
            self._exchange(request, ex, stop_after_events, on_event)
        finally:
            if self.budget is not None:
                self.budget.record(ex)
        return ex

    def _exchange(
        self,
        request: httpx.Request,
        ex: Exchange,
        stop_after_events: int | None,
        on_event: Callable[[Exchange], None] | None,
    ) -> None:
        lim = self.target.limits
        deadline = ex.t_start_ns + int(lim.stream_timeout * 1e9)
        response: httpx.Response | None = None
        # a little after the deadline, so a stream that keeps talking is cut by the read loop
        watchdog = _Watchdog(lim.stream_timeout + 0.25)
        request.extensions["trace"] = watchdog.trace
        try:
            response = self._http.send(request, stream=True)
            ex.t_headers_ns = time.perf_counter_ns()
            ex.status = response.status_code
            ex.headers = {k.lower(): v for k, v in response.headers.items()}
            if ex.media_type == "text/event-stream":
                self._read_stream(response, ex, deadline, stop_after_events, on_event)
            else:
                self._read_body(response, ex, deadline)
            if watchdog.fired and not ex.timed_out:  # the shut-down socket read as a clean EOF
                ex.timed_out = True
                ex.error = f"the exchange outlived its {lim.stream_timeout:g} s deadline"
                if ex.stream is not None:
                    ex.stream.ended_by = "timeout"
        except httpx.TimeoutException as exc:
            ex.timed_out = True
            ex.error = f"no byte for {lim.timeout:g} s ({type(exc).__name__})"
            if ex.stream is not None:
                ex.error = f"no byte for {lim.timeout:g} s after event {len(ex.stream.events)}"
                ex.stream.close("timeout")
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol):
            raise  # the harness built a request it cannot send: a harness error, not the target's
        except httpx.HTTPError as exc:
            if watchdog.fired:
                ex.timed_out = True
                ex.error = f"the exchange outlived its {lim.stream_timeout:g} s deadline"
            else:
                reason = self.target.redact(str(exc)) or "connection failed"
                ex.error = f"{type(exc).__name__}: {reason}"
            if ex.stream is not None:
                ex.stream.close("timeout" if watchdog.fired else "transport-error")
        finally:
            watchdog.cancel()
            if response is not None:
                response.close()
            ex.t_end_ns = time.perf_counter_ns()

    def _read_body(self, response: httpx.Response, ex: Exchange, deadline: int) -> None:
        cap = self.target.limits.max_body_bytes
        buf = bytearray()
        for chunk in response.iter_raw():
            buf += chunk
            if len(buf) > cap:
                ex.error = f"body exceeded {cap / 1048576:g} MiB"
                ex.over_cap = True
                break
            if time.perf_counter_ns() > deadline:
                ex.error = f"body not complete after {self.target.limits.stream_timeout:g} s"
                ex.timed_out = True
                break
        ex.body = bytes(buf[:cap])

    def _read_stream(
        self,
        response: httpx.Response,
        ex: Exchange,
        deadline: int,
        stop_after_events: int | None,
        on_event: Callable[[Exchange], None] | None,
    ) -> None:
        lim = self.target.limits
        rec = ex.stream = StreamRecord()
        total = 0
        for chunk in response.iter_raw():
            now = time.perf_counter_ns()
            total += len(chunk)
            new = rec.feed(chunk, now)
            if new and on_event is not None:
                on_event(ex)
            if stop_after_events is not None and len(rec.events) >= stop_after_events:
                rec.close("client-drop")
                return
            if total > lim.max_body_bytes:
                ex.error = f"stream exceeded {lim.max_body_bytes / 1048576:g} MiB"
                ex.over_cap = True
                rec.close("byte-cap")
                return
            if now > deadline:
                ex.error = (
                    f"stream still open after {lim.stream_timeout:g} s ({len(rec.events)} events)"
                )
                ex.timed_out = True
                rec.close("timeout")
                return
        rec.close("eof")
        ex.body = bytes(rec.wire)


class _Watchdog:
    """Bounds one exchange as a whole, headers included (httpx bounds each read, not the sum).

    httpx's trace hook hands over the connection's socket; when the deadline passes, the socket
    is shut down, so a server that drips its headers a byte at a time cannot hold the harness.
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._sock: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, name: str, info: dict[str, Any]) -> None:
        if name == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            if stream is not None:
                self._sock = stream.get_extra_info("socket")

    def _fire(self) -> None:
        self.fired = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()
