"""The reference's send log (``serve --calibration``): what it records and how it summarizes."""

from __future__ import annotations

from chatconform.reference.sendlog import SendLog


def test_first_delta_gaps_and_lateness() -> None:
    log = SendLog()
    # one stream received at t=10.000 s: deltas due at +0.200, +0.220, +0.240 s
    log.delta(10.0, 10.200, 10.2015, None)  # 1.5 ms late
    log.delta(10.0, 10.220, 10.2300, 10.2015)  # 10 ms late: the gap shows it
    log.delta(10.0, 10.240, 10.2400, 10.2300)  # on time: a short gap after a late one
    snap = log.snapshot()
    assert snap["ttft_ms"]["count"] == 1
    assert abs(snap["ttft_ms"]["p50"] - 201.5) < 1e-6
    assert snap["itl_ms"]["count"] == 2
    assert abs(snap["itl_ms"]["max"] - 28.5) < 1e-6
    assert abs(snap["itl_ms"]["p50"] - 10.0) < 1e-6  # nearest rank: the lower of two
    assert abs(snap["late_ms"]["max"] - 10.0) < 1e-6
    log.reset()
    assert log.snapshot()["late_ms"]["count"] == 0


def test_bounded_but_counting() -> None:
    log = SendLog(cap=3)
    for i in range(10):
        log.delta(0.0, 0.1, 0.1 + i / 1000, None)
    ttft = log.snapshot()["ttft_ms"]
    assert ttft["count"] == 10
    assert ttft["kept"] == 3
    assert abs(ttft["max"] - 102.0) < 1e-6  # the first 3 kept


def test_calibration_runs_on_uvloop_when_installed() -> None:
    """uvicorn's ``loop`` setting is applied only by ``uvicorn.run``; the reference runs
    ``Server.serve`` itself, so the loop it asks for must come from its own runner."""
    import asyncio

    import pytest

    from chatconform.reference.server import event_loop_and_parser, loop_factory

    assert loop_factory("asyncio") is None
    uvloop = pytest.importorskip("uvloop")  # the optional [calibration] extra
    assert event_loop_and_parser(True)[0] == "uvloop"
    factory = loop_factory("uvloop")
    assert factory is not None
    with asyncio.Runner(loop_factory=factory) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)


def test_precise_sleep_is_never_early() -> None:
    import asyncio

    from chatconform.reference.calibration import clock, sleep_until_precise

    async def main() -> list[float]:
        late = []
        for i in range(5):
            due = clock() + 0.0005 * i
            await sleep_until_precise(due)
            late.append(clock() - due)
        return late

    assert min(asyncio.run(main())) >= 0


def test_the_timerfd_waker_wakes_each_waiter_at_or_after_its_time() -> None:
    """Waiters out of order, one cancelled: each wakes, never before its due time."""
    import asyncio

    import pytest

    from chatconform.reference.calibration import clock
    from chatconform.reference.precise import waker

    async def main() -> list[float]:
        w = waker()
        if w is None:
            pytest.skip("no timerfd on this system")  # Linux has one: this runs here
        start = clock()
        dues = [start + d for d in (0.030, 0.010, 0.020, 0.010, 0.005)]

        async def one(due: float) -> float:
            await w.sleep_until(due)
            return clock() - due

        cancelled = asyncio.ensure_future(w.sleep_until(start + 0.015))
        tasks = [asyncio.ensure_future(one(d)) for d in dues]
        await asyncio.sleep(0)
        cancelled.cancel()
        return list(await asyncio.wait_for(asyncio.gather(*tasks), timeout=5))

    late = asyncio.run(main())
    assert len(late) == 5
    assert min(late) >= 0


def test_calibration_frames_are_the_encoders_byte_for_byte() -> None:
    """The template path writes exactly what the normal path's encoder writes, delta by delta."""
    from chatconform.reference.completions import _chunk, delta_frames
    from chatconform.reference.faults import Switches
    from chatconform.reference.wire import FrameEncoder

    enc = FrameEncoder(Switches())
    deltas = ["Hello", " wörld", ' "quoted" \\ back', "tab\there\nline", "\x00ctl\x1f", "😀 emoji",
              "", "\ud800 lone surrogate", "\u2028sep", "</script>"]  # fmt: skip
    for base in (
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "agt_x"},
        {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 2, "model": "é-agent"},
        {"id": "chatcmpl-3", "object": "chat.completion.chunk", "created": 3, "model": "\udfff"},
    ):
        want = [enc.frame(None, _chunk(base, {"content": d}, None)) for d in deltas]
        assert delta_frames(enc, base, deltas) == want


def test_the_waker_calls_back_in_due_order_never_early_and_past_a_failing_callback() -> None:
    import asyncio

    import pytest

    from chatconform.reference.calibration import clock
    from chatconform.reference.precise import waker

    async def main() -> list[tuple[str, float]]:
        w = waker()
        if w is None:
            pytest.skip("no timerfd on this system")  # Linux has one: this runs here
        start = clock()
        calls: list[tuple[str, float]] = []
        done = asyncio.get_running_loop().create_future()

        def at(name: str, due: float) -> None:
            def cb() -> None:
                calls.append((name, clock() - due))
                if name == "c":  # a callback may schedule the next, as the emitter does
                    w.call_at(due + 0.005, lambda: done.set_result(None))

            w.call_at(due, cb)

        def broken() -> None:
            raise RuntimeError("one caller's bug")

        at("c", start + 0.020)
        at("a", start + 0.005)
        w.call_at(start + 0.008, broken)
        at("b", start + 0.010)
        await asyncio.wait_for(done, timeout=5)
        return calls

    calls = asyncio.run(main())
    assert [name for name, _ in calls] == ["a", "b", "c"]
    assert min(late for _, late in calls) >= 0


def test_per_request_first_sends_on_the_wall_clock_bounded_and_reset(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    from chatconform.reference import sendlog

    monkeypatch.setattr(sendlog, "REQUEST_CAP", 2)
    log = SendLog()
    mono, wall = time.monotonic(), time.time()
    log.first_sent("chatcmpl-a", mono - 0.2, mono)
    log.first_sent(None, mono, mono)  # no id: nothing to join on
    log.first_sent("chatcmpl-b", mono, mono + 0.1)
    log.first_sent("chatcmpl-c", mono, mono)  # past the cap
    got = log.per_request()
    assert [r["id"] for r in got] == ["chatcmpl-a", "chatcmpl-b"]
    assert abs(got[0]["first_sent_unix"] - wall) < 0.05
    assert abs(got[0]["first_sent_unix"] - got[0]["received_unix"] - 0.2) < 1e-3
    log.reset()
    assert log.per_request() == []


def test_the_snapshot_says_how_the_server_reads_the_wall_clock() -> None:
    import time

    got = SendLog().snapshot()["unix_minus_monotonic"]
    assert abs(got - (time.time() - time.monotonic())) < 0.01
