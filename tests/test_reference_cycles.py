"""The reference server leaves no reference cycle per request for the cyclic GC to find.

ASGI servers hold the scope in their request cycle, and the send they hand the app is a method of
that cycle: CatchAll put that send into the scope (for --calibration's raw body writes), so every
request became a cycle (scope -> send -> cycle -> scope) freed only by the cyclic GC. At 200
streams its full collections paused the server's loop for up to 120 ms, and the injected TTFT was
sent 20-50 ms late at p99.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from chatconform.reference.app import CatchAll
from chatconform.reference.calibration import CYCLE_SEND, RAW_SEND
from chatconform.reference.faults import Switches


class Marker:
    """Something only the request's scope holds: freed with it, or not."""


class ServerCycle:
    """What an ASGI server keeps per request: the scope, and a send bound to itself."""

    def __init__(self) -> None:
        self.scope: dict[str, Any] = {"type": "http", "path": "/", "marker": Marker()}
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


class Wrapping:
    """A middleware's wrapper around a send: what it saw go through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seen: list[str] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.seen.append(message["type"])
        await self.inner(message)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raw = scope[RAW_SEND]  # what --calibration's stream writes its body to
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await raw({"type": "http.response.body", "body": b"ok", "more_body": False})


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@pytest.mark.usefixtures("no_cyclic_gc")
def test_a_served_request_is_freed_without_the_cyclic_gc() -> None:
    cycle = ServerCycle()
    marker = weakref.ref(cycle.scope["marker"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(CatchAll(app, Switches())(cycle.scope, receive, cycle.send))
    assert [m["type"] for m in cycle.sent] == ["http.response.start", "http.response.body"]
    assert RAW_SEND not in cycle.scope
    del cycle
    assert marker() is None, "the request outlived its last reference: a cycle holds it"


@pytest.mark.usefixtures("no_cyclic_gc")
def test_the_check_sees_a_cycle_when_there_is_one() -> None:
    """The same request with the send left in the scope stays alive: the test above can fail."""
    cycle = ServerCycle()
    marker = weakref.ref(cycle.scope["marker"])
    cycle.scope[RAW_SEND] = cycle.send
    del cycle
    assert marker() is not None
    gc.collect()
    assert marker() is None


@pytest.mark.usefixtures("no_cyclic_gc")
def test_the_servers_own_send_handed_over_weakly_leaves_no_cycle() -> None:
    """--calibration's protocol puts the server's send in the scope as a weak reference
    (CYCLE_SEND): CatchAll writes through it as RAW_SEND, and the request is still freed."""
    cycle = ServerCycle()
    marker = weakref.ref(cycle.scope["marker"])
    cycle.scope[CYCLE_SEND] = weakref.WeakMethod(cycle.send)
    wrapper = Wrapping(cycle.send)  # a middleware's wrapper of the server's send

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(CatchAll(app, Switches())(cycle.scope, receive, wrapper))
    assert [m["type"] for m in cycle.sent] == ["http.response.start", "http.response.body"]
    assert wrapper.seen == ["http.response.start"]  # the body went straight to the server's send
    assert RAW_SEND not in cycle.scope
    assert CYCLE_SEND not in cycle.scope
    del cycle, wrapper
    assert marker() is None, "the request outlived its last reference: a cycle holds it"
