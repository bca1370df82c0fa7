"""The API client: one method per operation over httpx, every call bounded in time and bytes.

Each call returns an Exchange (record.py) and appends it to the client's log, so the checks can read
every request a test made. Keys never appear in reprs; reproducers name their environment variable.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import httpx

from chatconform import interrupt
from chatconform.budget import Budget
from chatconform.reader import read_exchange
from chatconform.record import Exchange
from chatconform.target import Target
from chatconform.tls import verifying_context


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
            verify=verifying_context(),  # one CA bundle load per process, not per client
            timeout=httpx.Timeout(lim.timeout),
            follow_redirects=False,  # a redirect must never carry the key to another host
            # a fresh connection per exchange lets the watchdog bound it as a whole (see reader.py)
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
        """Send one request and record the whole response (through chatconform.reader).

        A `text/event-stream` response is read as it arrives and parsed incrementally; any other
        body is read to the byte cap. `stop_after_events` drops the connection after that many
        events (a client that goes away mid-stream).
        """
        interrupt.check()  # a Ctrl-C a library swallowed still stops the run here
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
        refusal = None
        asks = _asks_for_stream(content)
        # the first request for a stream of its endpoint gets the full deadline (Budget.unproven)
        full = asks and self.budget is not None and self.budget.unproven(ex)
        if self.budget is not None and asks and not full:
            refusal = self.budget.stream_refusal()  # before admit: no agent call held for it
        if refusal is None and self.budget is not None:
            refusal = self.budget.admit(ex)
        if refusal is not None:
            ex.error = refusal
            ex.not_sent = True
            ex.t_end_ns = ex.t_start_ns
            return ex
        limits = self.target.limits
        degraded = self.budget is not None and self.budget.degraded and not full
        if degraded and self.budget is not None:  # its streams do not end: a short deadline
            limits = dataclasses.replace(limits, stream_timeout=self.budget.exchange_seconds())
        windowed: list[int] = []  # the shared window's close, when it cut this stream

        def cutoff(headers_ns: int) -> int | None:
            if full or self.budget is None:
                return None
            end = self.budget.stream_cutoff_ns(headers_ns)
            if end is not None:  # the window opened (maybe in another worker) while in flight
                windowed.append(end)
            return end

        try:
            read_exchange(
                self._http,
                request,
                ex,
                limits,
                self.target.redact,
                stop_after_events=stop_after_events,
                on_event=on_event,
                stream_cutoff=cutoff,
            )
        finally:
            cut = degraded or bool(windowed)
            if cut and ex.timed_out and self.budget is not None and ex.t_end_ns:
                # cut short because the target's streams are known not to end: not the target's
                # failure to meet the full deadline, so nothing on it is judged (ERROR)
                ex.abandoned = self.budget.abandon_reason((ex.t_end_ns - ex.t_start_ns) / 1e9)
                ex.error = f"{ex.error}; {ex.abandoned}"
            if self.budget is not None:
                self.budget.record(ex)
        return ex


def _asks_for_stream(content: bytes | None) -> bool:
    """True when a JSON request body says `"stream": true` (the response will be a stream)."""
    if not content or b'"stream"' not in content or len(content) > 1_000_000:
        return False
    try:
        body = json.loads(content)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("stream") is True
