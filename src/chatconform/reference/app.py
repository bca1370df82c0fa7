"""The Starlette application: routes under /api/v1, and every error rendered as problem+json."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatconform.reference.calibration import CYCLE_SEND, RAW_SEND, RECEIVED, clock
from chatconform.reference.completions import create_completion
from chatconform.reference.context import Context, ctx_of
from chatconform.reference.faults import FAULT_HIT, Switches
from chatconform.reference.problems import ApiError, problem_response
from chatconform.reference.sessions import create_session, end_session, get_session, messages

PREFIX = "/api/v1"
#: outside the API: the server's own send times, served under ``--calibration`` only
CALIBRATION_PATH = "/_calibration/send-times"
log = logging.getLogger("chatconform.reference")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _is_completions(path: str) -> bool:
    return path.rstrip("/").endswith("/chat/completions")


def _render(err: ApiError, path: str, switches: Switches) -> Response:
    return problem_response(err, switches, completions=_is_completions(path))


class CatchAll:
    """Turns any unexpected exception into a 500 problem+json (never a traceback body), and
    draws whether the run's fault hits this request (``--fault-rate``)."""

    def __init__(self, app: ASGIApp, switches: Switches) -> None:
        self.app = app
        self.switches = switches

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        # --calibration's TTFT counts from the loop's read of the request (the stamped protocol)
        # or, under another, from here: before routing and the body's read, each of which may
        # wait on a busy loop
        scope.setdefault(RECEIVED, clock())
        # --calibration's stream writes its body straight to the ASGI server's send
        direct = scope.pop(CYCLE_SEND, None)
        scope[RAW_SEND] = (direct() if direct is not None else None) or send
        hit = FAULT_HIT.set(self.switches.draw())  # --fault-rate: this request, or not

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            # The client left before its request body was read: no one to answer, nothing broke.
            log.debug("client disconnected during %s %s", scope.get("method"), scope.get("path"))
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            err = ApiError(500, "internal_error", "the server failed to process the request")
            await _render(err, scope.get("path", ""), self.switches)(scope, receive, send)
        finally:
            FAULT_HIT.reset(hit)
            # the scope holds the server's send, and the send its request cycle, which holds the
            # scope: a reference cycle per request, left to the cyclic GC, whose pauses (up to
            # 120 ms at 200 streams) made the server late
            del scope[RAW_SEND]


async def _send_times(request: Request) -> Response:
    """``--calibration`` only: the server's own send times so far; ``?requests=1`` adds them per
    request (response id, receipt, first delta handed over; wall clock); ``?reset=1`` starts
    anew."""
    log = ctx_of(request).sendlog
    assert log is not None  # the route exists only with a send log
    body = log.snapshot()
    if request.query_params.get("requests") == "1":  # per request, to join with a client's
        body["requests"] = log.per_request()
    if request.query_params.get("reset") == "1":
        log.reset()
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def build_app(ctx: Context) -> Starlette:
    """The ASGI app for one server run."""
    switches = ctx.settings.switches

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _render(exc, request.url.path, switches)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        detail = "no such route" if exc.status_code == 404 else str(exc.detail)
        err = ApiError(exc.status_code, code, detail, headers=dict(exc.headers or {}))
        return _render(err, request.url.path, switches)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await ctx.turns.drain(timeout=5.0)

    routes = [
        Route(PREFIX + "/chat/sessions", create_session, methods=["POST"]),
        Route(PREFIX + "/chat/sessions/{session_id}", get_session, methods=["GET"]),
        Route(PREFIX + "/chat/sessions/{session_id}/end", end_session, methods=["POST"]),
        Route(PREFIX + "/chat/sessions/{session_id}/messages", messages, methods=["GET", "POST"]),
        Route(PREFIX + "/chat/completions", create_completion, methods=["POST"]),
    ]
    if ctx.sendlog is not None:
        routes.append(Route(CALIBRATION_PATH, _send_times, methods=["GET"]))
    app = Starlette(
        routes=routes,
        middleware=[Middleware(CatchAll, switches=switches)],
        exception_handlers={ApiError: api_error, HTTPException: http_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.ctx = ctx
    return app
