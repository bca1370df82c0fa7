"""The run's stream health (chatconform.budget): after one stream that did not end, later exchanges
share one short window and are abandoned (ERROR, never FAIL) instead of costing a full deadline each."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chatconform import budget as budget_mod
from chatconform.budget import Budget
from chatconform.checks.common import finding
from chatconform.checks.unended import unended
from chatconform.client import Client
from chatconform.health import SharedHealth
from chatconform.record import Exchange, StreamRecord
from chatconform.target import Limits, Target

from hostile_servers import hostile


def timed_out_stream(path: str = "/chat/sessions/s/messages") -> Exchange:
    ex = Exchange("POST", f"http://x/api/v1{path}", {}, None, status=200)
    ex.stream = StreamRecord()
    ex.stream.close("timeout")
    ex.timed_out = True
    ex.error = "stream still open after 30 s (12 events)"
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
        refused = c.post_message("s", "hi", stream=True)
        # the first stream of another endpoint: its termination rule (OAI-4) is not judged yet,
        # so it gets the full deadline whatever struck first; the next one is not sent
        completion = c.completion({"model": "m", "messages": [], "stream": True})
        again = c.completion({"model": "m", "messages": [], "stream": True})
        plain = c.completion({"model": "m", "messages": []})
    assert refused.not_sent  # asks for a stream once the window is spent: not sent at all
    assert "stream tests abandoned: 1 earlier stream did not end" in (refused.error or "")
    assert completion.timed_out
    assert completion.abandoned is None
    assert [f.rule for f in unended(completion)] == ["OAI-4"]
    assert again.not_sent
    assert "2 earlier streams did not end" in (again.error or "")
    assert not plain.not_sent  # a plain request is still sent (and judged)
    for ex in later:
        assert ex.abandoned is not None
        assert "1 earlier stream did not end" in ex.abandoned
        assert finding("SSE-5", "a terminal frame", ex.describe(), ex).kind == "budget"


def test_the_processes_of_a_run_share_what_they_learned(tmp_path: Path) -> None:
    """Two workers of one run (one health file): the first strike, in either, degrades both, and
    both share the one window it opened; a Budget of another run (its own file) is untouched."""
    one = Budget(Limits(), health=tmp_path / "stream-health.json")
    two = Budget(Limits(), health=tmp_path / "stream-health.json")
    other = Budget(Limits(), health=tmp_path / "another-run.json")
    shared = SharedHealth(tmp_path / "stream-health.json")
    assert not one.degraded
    assert not two.degraded
    one.record(timed_out_stream())
    window_end = shared.read().window_end
    assert window_end is not None
    assert two.degraded
    assert two.exchange_seconds() == budget_mod.DEGRADED_EXCHANGE_S
    assert "1 earlier stream did not end (outlived 30 s)" in two.health_reason
    two.record(timed_out_stream())  # a stream already in flight in the other worker
    assert "2 earlier streams did not end" in one.health_reason
    assert shared.read().window_end == window_end  # one window, opened by the run's first strike
    assert not other.degraded


def test_the_shared_window_once_spent_refuses_streams_in_every_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget_mod, "ABANDON_WINDOW_S", 0.0)
    one = Budget(Limits(), health=tmp_path / "h.json")
    two = Budget(Limits(), health=tmp_path / "h.json")
    one.record(timed_out_stream())
    assert "stream tests abandoned: 1 earlier stream did not end" in (two.stream_refusal() or "")


@pytest.mark.parametrize(
    ("path", "rule"), [("/chat/sessions/s/messages", "SSE-5"), ("/chat/completions", "OAI-4")]
)
def test_a_stream_given_its_full_deadline_breaks_the_termination_rule(path: str, rule: str) -> None:
    """Whichever test sent it (checks.unended): the run's first stream that did not end is a FAIL
    on its endpoint's termination rule, even in a test that aims at another rule."""
    out = unended(timed_out_stream(path))
    assert [(f.rule, f.kind) for f in out] == [(rule, "target")]
    assert "stream still open after 30 s" in out[0].got
    assert out.rules_examined() == {rule}


def test_a_request_for_a_stream_with_no_response_in_time_breaks_the_termination_rule() -> None:
    """A target that drips its headers: no stream at all, yet the first strike of the run."""
    ex = Exchange("POST", "http://x/api/v1/chat/sessions/s/messages", {}, b'{"stream": true}')
    ex.timed_out = True
    ex.error = "the exchange outlived its 30 s deadline"
    out = unended(ex)
    assert [(f.rule, f.kind) for f in out] == [("SSE-5", "target")]
    plain = Exchange("POST", ex.url, {}, b'{"stream": false}')
    plain.timed_out, plain.error = True, ex.error
    assert not unended(plain)  # no stream was asked for: not the termination rule's business


def test_streams_cut_by_the_run_or_the_client_break_no_termination_rule() -> None:
    abandoned = timed_out_stream()
    abandoned.abandoned = "abandoned after 5.0 s: 1 earlier stream did not end"
    dropped = timed_out_stream()
    dropped.stream.ended_by = "client-drop"  # type: ignore[union-attr]
    ended = timed_out_stream()
    ended.timed_out = False
    ended.stream.ended_by = "eof"  # type: ignore[union-attr]
    elsewhere = timed_out_stream("/chat/sessions")  # a stream where JSON was due: other rules
    for ex in (abandoned, dropped, ended, elsewhere):
        assert not unended(ex), ex
    assert finding("SSE-5", "x", "y", abandoned).kind == "budget"


def test_the_breaker_counts_the_whole_runs_exchanges(tmp_path: Path) -> None:
    """A target that stopped answering: three timeouts in a row across the workers trip the
    breaker in every worker; an answer in any worker restarts the count."""
    one = Budget(Limits(), health=tmp_path / "h.json")
    two = Budget(Limits(), health=tmp_path / "h.json")
    silent = Exchange("GET", "http://x/", {}, None)
    silent.timed_out = True
    ok = Exchange("GET", "http://x/", {}, None, status=200)
    one.record(silent)
    two.record(silent)
    two.record(ok)  # an answer: the count starts again
    one.record(silent)
    two.record(silent)
    assert one.refusal() is None
    assert two.refusal() is None
    two.record(silent)
    assert "3 consecutive exchanges timed out" in (one.refusal() or "")
    assert not one.degraded  # no stream did not end: nothing is abandoned


def test_a_stream_in_flight_when_another_worker_strikes_is_abandoned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent before the run knew, its headers after another worker's stream outlived its deadline:
    the shared window cuts it, so it is abandoned (ERROR), not a FAIL of a deadline it never got."""
    monkeypatch.setattr(budget_mod, "ABANDON_WINDOW_S", 0.5)
    limits = Limits(timeout=5.0, stream_timeout=20.0)
    b = Budget(limits, health=tmp_path / "h.json")
    other = Budget(limits, health=tmp_path / "h.json")
    real = b.stream_cutoff_ns

    def strike_meanwhile(headers_ns: int) -> int | None:
        other.record(timed_out_stream())
        return real(headers_ns)

    monkeypatch.setattr(b, "stream_cutoff_ns", strike_meanwhile)
    with (
        hostile("endless") as server,
        Client(Target(server.base_url, limits=limits), budget=b) as c,
    ):
        ex = c.post_message("s", "hi", stream=True)
    assert ex.timed_out
    assert ex.abandoned is not None
    assert "1 earlier stream did not end" in ex.abandoned
    assert not unended(ex)
