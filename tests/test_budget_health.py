"""The run's stream health (chatconform.budget): after one stream that did not end, later exchanges
share one short window and are abandoned (ERROR, never FAIL) instead of costing a full deadline each."""

from __future__ import annotations

import time

import pytest

from chatconform import budget as budget_mod
from chatconform.budget import Budget
from chatconform.checks.common import finding
from chatconform.client import Client
from chatconform.record import Exchange, StreamRecord
from chatconform.target import Limits, Target

from hostile_servers import hostile


def timed_out_stream() -> Exchange:
    ex = Exchange("POST", "http://x/api/v1/chat/sessions/s/messages", {}, None, status=200)
    ex.stream = StreamRecord()
    ex.timed_out = True
    ex.t_end_ns = ex.t_start_ns + int(31e9)
    return ex


def test_one_stream_that_did_not_end_degrades_the_run() -> None:
    b = Budget(Limits())
    assert not b.degraded
    assert b.exchange_seconds() == 30.0
    assert b.streams_not_judged() is None
    b.record(timed_out_stream())
    assert b.degraded
    assert b.exchange_seconds() == budget_mod.DEGRADED_EXCHANGE_S
    assert "1 earlier stream did not end (outlived 30 s)" in b.health_reason
    assert "streams do not end" in (b.streams_not_judged() or "")


def test_abandoned_exchanges_with_headers_do_not_trip_the_breaker() -> None:
    b = Budget(Limits())
    b.record(timed_out_stream())  # one failure
    for _ in range(5):
        ex = timed_out_stream()
        ex.abandoned = "abandoned"
        b.record(ex)
    assert b.refusal() is None  # the target answers; its JSON can still be judged
    silent = Exchange("GET", "http://x/", {}, None)
    silent.abandoned, silent.timed_out = "abandoned", True
    b.record(silent)
    b.record(silent)
    assert b.refusal() is not None  # no headers at all: the target stopped answering


def test_nothing_usable_in_a_row_trips_the_breaker_too() -> None:
    b = Budget(Limits())
    b.record(timed_out_stream())
    for _ in range(budget_mod.UNUSABLE_IN_A_ROW - 1):
        ex = timed_out_stream()
        ex.abandoned = "abandoned"
        assert b.refusal() is None
        b.record(ex)
    assert "answers were all cut short" in (b.refusal() or "")


def test_a_healthy_run_is_never_degraded() -> None:
    b = Budget(Limits())
    ok = Exchange("GET", "http://x/", {}, None, status=200)
    ok.t_end_ns = ok.t_start_ns + 1000
    for _ in range(10):
        b.record(ok)
    assert not b.degraded
    assert b.stream_cutoff_ns(time.perf_counter_ns()) is None


@pytest.mark.parametrize("mode", ["endless", "stall"])
def test_later_streams_are_abandoned_fast_and_their_findings_are_errors(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget_mod, "ABANDON_WINDOW_S", 0.5)
    limits = Limits(timeout=1.0, stream_timeout=2.0, max_consecutive_failures=0)
    b = Budget(limits)
    with hostile(mode) as server, Client(Target(server.base_url, limits=limits), budget=b) as c:
        first = c.post_message("s", "hi", stream=True)
        assert first.timed_out
        assert first.abandoned is None  # the full deadline: the target's failure, a FAIL
        assert finding("SSE-5", "a terminal frame", first.describe(), first).kind == "target"
        time.sleep(0.6)  # the shared window is spent
        started = time.monotonic()
        # not asking for a stream, but answered with one: cut at its headers
        later = [c.post_message("s", "hi") for _ in range(3)]
        took = time.monotonic() - started
    assert took < 3.0, took  # not 3 x 2 s
    with hostile(mode) as server, Client(Target(server.base_url, limits=limits), budget=b) as c:
        refused = c.completion({"model": "m", "messages": [], "stream": True})
        plain = c.completion({"model": "m", "messages": []})
    assert refused.not_sent  # asks for a stream once the window is spent: not sent at all
    assert "stream tests abandoned: 1 earlier stream did not end" in (refused.error or "")
    assert not plain.not_sent  # a plain request is still sent (and judged)
    for ex in later:
        assert ex.abandoned is not None
        assert "1 earlier stream did not end" in ex.abandoned
        assert finding("SSE-5", "a terminal frame", ex.describe(), ex).kind == "budget"
