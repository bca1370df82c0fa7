"""Locust users: sessions (create, streamed messages, end), completions, and the open-loop driver.

Each closed-loop user owns a keep-alive pool of one connection (a user runs one request at a
time, so the pools add up to the concurrency); the open-loop driver shares one pool sized to
its in-flight cap. Every request is read by the load path's reader (chatconform.load.h1reader,
the project's one SSE parser), measured on a Timeline and judged by the suites' stream checks
(chatconform.load.conformance). That work after a stream waits for an idle moment of the event
loop (chatconform.load.settle), so the reads of the streams still in flight come first.

At the end of the run no new request starts (``LoadContext.stopping``); requests in flight run to
their end, or to their own stream deadline, and are counted like any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import gevent
from gevent.pool import Pool
from locust import User, constant, task

from chatconform.load.h1 import H1Client
from chatconform.load.openloop import offsets_ns
from chatconform.load.plugin import LoadContext, context
from chatconform.load.stream import call_json, make_client, observe, send_stream
from chatconform.load.timeline import DROPPED, Timeline
from chatconform.record import Exchange

LEAD_NS = 20_000_000  # the open-loop schedule starts this long after the driver does
IDLE_S = 0.05  # a user with nothing to do once the run is stopping


def completion_body(ctx: LoadContext) -> dict[str, object]:
    body: dict[str, object] = {
        "model": ctx.target.agent_id,
        "messages": [{"role": "user", "content": ctx.settings.prompt}],
        "stream": True,
    }
    if ctx.settings.ask_usage:  # OpenAI's way to get the token count; a server may ignore it
        body["stream_options"] = {"include_usage": True}
    return body


def completion_turn(ctx: LoadContext, http: H1Client, t_intended: int) -> None:
    tl = Timeline("completions", t_intended)
    try:
        with ctx.in_flight():
            ex = send_stream(tl, http, ctx.target, "/chat/completions", completion_body(ctx))
    except BaseException:  # censored (the run stopping) or a harness bug: recorded at once
        ctx.record(tl)
        raise
    ctx.settler.submit(_after_stream(ctx, tl, ex, ctx.judge_completion))


def create_session(ctx: LoadContext, http: H1Client) -> str | None:
    status, data, error, ms = call_json(
        http, ctx.target, "POST", "/chat/sessions", {"agentId": ctx.target.agent_id}
    )
    ctx.fire_call("sessions create", "POST", ms, status, error)
    if status is None or status >= 300 or not isinstance(data, dict):
        return None
    sid = (data.get("data") or {}).get("id") if isinstance(data.get("data"), dict) else None
    return sid if isinstance(sid, str) else None


def end_session(ctx: LoadContext, http: H1Client, sid: str) -> None:
    status, _, error, ms = call_json(http, ctx.target, "POST", f"/chat/sessions/{sid}/end", {})
    ctx.fire_call("sessions end", "POST", ms, status, error)


def session_turns(ctx: LoadContext, http: H1Client, t_intended: int, turns: int) -> None:
    """Create a session, stream ``turns`` messages into it (fewer once the run stops), end it.

    A failed create is recorded as an http_error/transport_error sample of the endpoint (the
    turn could not be made), so it counts in the error rate.
    """
    t_dispatch = time.perf_counter_ns()
    sid = create_session(ctx, http)
    if sid is None:
        tl = Timeline("sessions", t_intended, t_dispatch=t_dispatch, t_sent=t_dispatch)
        tl.t_close = time.perf_counter_ns()
        tl.outcome = "http_error"
        tl.error = "could not create a session"
        ctx.record(tl)
        return
    try:
        for i in range(turns):
            if i and ctx.stopping:
                break
            tl = Timeline("sessions", t_intended if i == 0 else time.perf_counter_ns())
            if i == 0:
                tl.t_dispatch = t_dispatch
            content = ctx.settings.prompt
            body = {"content": content, "stream": True}
            try:
                with ctx.in_flight():
                    path = f"/chat/sessions/{sid}/messages"
                    ex = send_stream(tl, http, ctx.target, path, body)
            except BaseException:  # censored (the run stopping) or a harness bug: recorded now
                ctx.record(tl)
                raise
            judge = partial(ctx.judge_session, session_id=sid, content=content)
            ctx.settler.submit(_after_stream(ctx, tl, ex, judge))
    finally:
        end_session(ctx, http, sid)


def _after_stream(
    ctx: LoadContext, tl: Timeline, ex: Exchange, judge: Callable[[Timeline, Exchange], None]
) -> Callable[[], None]:
    """A stream's work once read (its timeline, its checks, its sample), for the settler to run
    at an idle moment of the loop, after the reads of the streams still in flight."""

    def settle() -> None:
        try:
            observe(tl, ex)
            judge(tl, ex)
        finally:
            ctx.record(tl)

    return settle


class _Streaming(User):
    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        self.ctx = context()
        self.ctx.wait_ready()
        self.http = make_client(self.ctx.target, 1)

    def on_stop(self) -> None:
        http = getattr(self, "http", None)
        if http is not None:
            http.close()


class SessionUser(_Streaming):
    """A conversation: create a session, post --cc-turns streamed messages, end it."""

    @task
    def conversation(self) -> None:
        if self.ctx.stopping:
            gevent.sleep(IDLE_S)
            return
        session_turns(self.ctx, self.http, time.perf_counter_ns(), self.ctx.settings.turns)


class CompletionUser(_Streaming):
    """One streamed /chat/completions after another."""

    @task
    def complete(self) -> None:
        if self.ctx.stopping:
            gevent.sleep(IDLE_S)
            return
        completion_turn(self.ctx, self.http, time.perf_counter_ns())


class OpenLoopUser(User):
    """Sends --cc-rate requests per second (over all workers) on an absolute schedule.

    One per worker process. Each arrival runs in its own greenlet, so a slow server does not
    delay the next arrival; dispatch lag (first send − intended start) is recorded per request.
    When the run stops, arrivals stop and the requests in flight are waited for.
    """

    wait_time = constant(0)

    def on_start(self) -> None:
        self.ctx = context()
        self.ctx.wait_ready()
        self.pool = Pool(self.ctx.settings.max_inflight)
        self.http = make_client(self.ctx.target, self.ctx.settings.max_inflight)

    def on_stop(self) -> None:
        self.pool.kill(block=True, timeout=5)
        self.http.close()

    @task
    def drive(self) -> None:
        ctx = self.ctx
        s = ctx.settings
        if s.rate <= 0:
            raise RuntimeError("OpenLoopUser needs --cc-rate > 0")
        if ctx.stopping:
            gevent.sleep(IDLE_S)
            return
        endpoints = ["sessions", "completions"] if s.endpoint == "both" else [s.endpoint]
        start = time.perf_counter_ns() + LEAD_NS
        arrivals = offsets_ns(s.rate, s.arrival, ctx.worker_index, ctx.workers, s.seed)
        for i, offset in enumerate(arrivals):
            due = start + offset
            wait = due - time.perf_counter_ns()
            if wait > 0:
                gevent.sleep(wait / 1e9)
            if ctx.stopping:
                break
            endpoint = endpoints[i % len(endpoints)]
            if self.pool.full():
                tl = Timeline(endpoint, due, outcome=DROPPED, error="in-flight cap reached")
                ctx.record(tl)
                continue
            self.pool.spawn(self._one, endpoint, due)
        self.pool.join(timeout=ctx.drain_s)  # the requests in flight finish and are counted

    def _one(self, endpoint: str, due: int) -> None:
        if endpoint == "completions":
            completion_turn(self.ctx, self.http, due)
        else:
            session_turns(self.ctx, self.http, due, 1)
