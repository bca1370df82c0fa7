"""Load metrics on synthetic timelines: each pitfall of streaming latency, without a network."""

from __future__ import annotations

import json
from itertools import islice

import pytest

from chatconform.load import summary as summary_mod
from chatconform.load import thresholds as th
from chatconform.load.metrics import Distribution, EndpointMetrics, RunMetrics
from chatconform.load.openloop import offsets_ns
from chatconform.load.timeline import (
    CLASSIFIERS,
    ERROR_EVENT,
    INCOMPLETE,
    OK,
    Timeline,
    derived,
    itl_gaps,
)
from chatconform.record import StreamRecord

MS = 1_000_000


def chunk(content: str | None = None, role: str | None = None, finish: str | None = None) -> bytes:
    delta: dict[str, str] = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    body = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def frame(event: str, payload: dict[str, object], eol: bytes = b"\n") -> bytes:
    data = json.dumps({"eventType": event, "payload": payload}).encode()
    return b"event: " + event.encode() + eol + b"data: " + data + eol + eol


def run(endpoint: str, reads: list[tuple[int, bytes]], sent_ms: int = 0) -> dict[str, object]:
    """Feed reads (ms since the intended start, bytes) like the reader does; return the sample."""
    tl = Timeline(endpoint, t_intended=0, t_sent=sent_ms * MS, t_headers=sent_ms * MS)
    record = StreamRecord()
    for at_ms, data in reads:
        tl.bytes += len(data)
        tl.on_events(record.feed(data, at_ms * MS), CLASSIFIERS[endpoint])
    record.close("eof")
    if tl.t_terminal is None:
        tl.outcome = INCOMPLETE
    tl.t_close = reads[-1][0] * MS
    return tl.to_sample()


def test_role_only_first_chunk_is_not_ttft() -> None:
    s = run(
        "completions",
        [
            (10, chunk(role="assistant", content="")),
            (60, chunk("Hel")),
            (70, chunk("lo")),
            (80, chunk(finish="stop") + b"data: [DONE]\n\n"),
        ],
    )
    assert s["outcome"] == OK
    assert s["first_event_ms"] == 10
    f = derived(s)
    assert f["ttft_ms"] == 60
    assert f["e2e_ms"] == 80
    assert itl_gaps(s) == [10]


def test_role_only_chunk_without_content_key() -> None:
    s = run("completions", [(5, chunk(role="assistant")), (25, chunk("x") + b"data: [DONE]\n\n")])
    assert derived(s)["ttft_ms"] == 25


def test_several_tokens_in_one_read_share_its_time() -> None:
    three = b"".join(frame("agent_message", {"messageId": "m", "delta": t}) for t in "abc")
    s = run(
        "sessions",
        [(50, three), (60, frame("agent_message", {"delta": "d"})), (61, frame("done", {}))],
    )
    assert s["content_ms"] == [50, 50, 50, 60]
    assert itl_gaps(s) == [0, 0, 10]
    f = derived(s)
    assert f["tpot_ms"] == pytest.approx((61 - 50) / 3)  # (E2E − TTFT) / (tokens − 1)
    assert f["e2e_ms"] == 61
    assert f["stall_ms"] == 10
    assert f["tail_ms"] == 1


def test_empty_session_delta_is_not_content() -> None:
    s = run(
        "sessions",
        [
            (5, frame("agent_message", {"delta": ""})),
            (9, frame("agent_message", {"delta": "x"}) + frame("done", {})),
        ],
    )
    assert derived(s)["ttft_ms"] == 9


def test_crlf_stream_parses_the_same() -> None:
    reads = [
        (20, frame("agent_message", {"delta": "a"}, b"\r\n")),
        (30, frame("agent_message", {"delta": "b"}, b"\r\n")),
        (31, frame("done", {}, b"\r\n")),
    ]
    s = run("sessions", reads)
    assert s["outcome"] == OK
    assert s["content_ms"] == [20, 30]


def test_frame_split_across_reads_is_timed_by_the_completing_read() -> None:
    whole = frame("agent_message", {"delta": "hello"}, b"\r\n")
    cut = whole.index(b"\r\n") + 1  # split inside a CRLF, the nastiest place
    s = run("sessions", [(40, whole[:cut]), (55, whole[cut:]), (56, frame("done", {}))])
    assert s["content_ms"] == [55]
    assert derived(s)["ttft_ms"] == 55


def test_incomplete_stream_is_counted_apart() -> None:
    s = run("sessions", [(20, frame("agent_message", {"delta": "a"}))])
    assert s["outcome"] == INCOMPLETE
    m = EndpointMetrics()
    m.add(s)
    out = m.summary()
    assert out["requests"] == 1
    assert out["incomplete"] == 1
    assert out["errors"] == 0
    assert out["ttft_ms"]["count"] == 0
    assert out["itl_ms"]["count"] == 0
    assert out["error_rate"] == 1.0


def test_error_terminated_stream_is_an_error_not_latency() -> None:
    s = run(
        "sessions",
        [(20, frame("agent_message", {"delta": "a"})), (30, frame("error", {"status": 500}))],
    )
    assert s["outcome"] == ERROR_EVENT
    oai = run("completions", [(20, chunk("a")), (25, b'data: {"error": {"message": "x"}}\n\n')])
    assert oai["outcome"] == ERROR_EVENT
    m = EndpointMetrics()
    good = run("sessions", [(100, frame("agent_message", {"delta": "a"}) + frame("done", {}))])
    for sample in (s, good):
        m.add(sample)
    out = m.summary()
    assert out["errors"] == 1
    assert out["ttft_ms"]["count"] == 1
    assert out["ttft_ms"]["max"] == 100  # the error stream's 20 ms is not in it


def test_frames_after_the_terminal_frame_are_ignored() -> None:
    s = run(
        "sessions",
        [
            (10, frame("agent_message", {"delta": "a"}) + frame("done", {})),
            (90, frame("agent_message", {"delta": "late"})),
        ],
    )
    assert s["content_ms"] == [10]


def test_distribution_percentiles_and_exact_extremes() -> None:
    d = Distribution()
    for v in range(1, 1001):
        d.add(float(v))
    out = d.summary()
    assert out["count"] == 1000
    assert out["min"] == 1
    assert out["max"] == 1000
    assert out["mean"] == pytest.approx(500.5)
    for key, want in (("p50", 500), ("p90", 900), ("p99", 990), ("p99.9", 999)):
        assert out[key] == pytest.approx(want, rel=1e-3)
    sub_ms = Distribution()
    sub_ms.add(0.0)
    sub_ms.add(0.25)
    assert sub_ms.summary()["max"] == 0.25


def test_dropped_is_not_an_attempt_and_censored_is_counted_with_its_elapsed_time() -> None:
    m = EndpointMetrics()
    m.add({**run("sessions", [(1, frame("done", {}))]), "outcome": "dropped"})
    assert m.summary()["requests"] == 0
    censored = run("sessions", [(1, frame("agent_message", {"delta": "a"})), (900, b"")])
    m.add({**censored, "outcome": "censored"})
    out = m.summary()
    assert (out["requests"], out["censored"], out["ok"]) == (1, 1, 0)
    assert out["censored_elapsed_ms"]["max"] == 900
    assert out["ttft_ms"]["count"] == 0  # never in latency


def test_warm_up_requests_are_counted_and_checked_but_not_measured() -> None:
    """--warm-up: a request sent in the run's first seconds stays out of latency, tokens,
    throughput and SLO attainment, and still counts as a request, an error and a violation."""
    m = EndpointMetrics({"ttft_ms": 100.0})
    fast = run("completions", [(50, chunk("a")), (60, chunk("b")), (61, b"data: [DONE]\n\n")])
    slow = run("completions", [(900, chunk("a")), (910, chunk("b")), (911, b"data: [DONE]\n\n")])
    broken = {**slow, "checked": True, "violations": [{"rule": "OAI-4", "message": "no [DONE]"}]}
    m.add({**slow, "warmup": True})  # ok, but slow: not in the figures
    m.add({**broken, "warmup": True})
    m.add({**run("completions", [(5, b"")]), "outcome": "http_error", "warmup": True})
    m.add(fast)
    out = m.summary()
    assert (out["requests"], out["ok"], out["errors"], out["warm_up_requests"]) == (4, 3, 1, 3)
    assert out["ttft_ms"]["count"] == 1
    assert out["ttft_ms"]["max"] == 50
    assert out["itl_ms"]["count"] == 1
    assert out["output_tokens"] == 2  # the measured request's two deltas only
    assert out["window_s"] == 0.061  # from the measured request's send to its close
    assert out["requests_per_s"] == round(1 / 0.061, 3)
    assert out["conformance"]["violating"] == 1  # a warm-up violation is still a violation
    assert (out["slo"]["requests"], out["slo"]["attained"]) == (1, 1)
    summary = summary_mod.build(RunMetrics(), [], [], {"warm_up_s": 2.0})
    summary["endpoints"] = {"completions": out}
    text = "\n".join(summary_mod.lines(summary))
    assert "warm-up: 3 requests sent in the first 2 s" in text


def _summary_with(ttft_ms: float, open_loop_lags: list[float] | None = None) -> dict[str, object]:
    metrics = RunMetrics()
    s = run(
        "completions",
        [
            (int(ttft_ms), chunk("a")),
            (int(ttft_ms) + 10, chunk("b")),
            (int(ttft_ms) + 11, b"data: [DONE]\n\n"),
        ],
    )
    metrics.add(s)
    for lag in open_loop_lags or []:
        metrics.add({**s, "dispatch_ms": lag}, open_loop=True)
    gates = th.from_values({"max_ttft_p95_ms": 100.0, "max_error_rate": 0.0})
    settings = {"rate": 5.0 if open_loop_lags else None}
    health = [{"role": "local", "cpu_percent": 5.0, "loop_lag_p99_ms": 0.5, "lag_hist": None}]
    return summary_mod.build(metrics, health, gates, settings)


def test_thresholds_pass_and_fail() -> None:
    ok = _summary_with(50)
    assert ok["verdict"] == "PASS"
    assert summary_mod.exit_code(ok) == 0
    assert all(r["passed"] for r in ok["thresholds"])
    slow = _summary_with(500)
    assert slow["verdict"] == "FAIL"
    assert summary_mod.exit_code(slow) == 1
    failed = [r for r in slow["thresholds"] if not r["passed"]]
    assert [(r["name"], r["endpoint"]) for r in failed] == [("ttft_ms.p95", "completions")]
    assert set(slow["endpoints"]["completions"]) >= {
        "requests",
        "errors",
        "incomplete",
        "ttft_ms",
        "itl_ms",
        "tpot_ms",
        "e2e_ms",
        "tokens_per_s",
        "requests_per_s",
    }
    assert {"cpu_percent", "loop_lag_p99_ms", "late_share"} <= set(slow["client"])


def test_nothing_measured_fails_a_latency_gate() -> None:
    results = th.evaluate(th.from_values({"max_e2e_p95_ms": 10.0}), {"sessions": {"e2e_ms": {}}})
    assert results[0]["passed"] is False


def test_open_loop_late_share_over_one_percent_is_invalid() -> None:
    on_time = _summary_with(50, [0.5] * 200)
    assert on_time["client"]["late_share"] == 0
    assert on_time["verdict"] == "PASS"
    late = _summary_with(50, [0.5] * 97 + [25.0] * 3)
    assert late["client"]["late_share"] == pytest.approx(0.03)
    assert late["verdict"] == "INVALID"
    assert summary_mod.exit_code(late) == 1


def test_constant_arrivals_are_absolute_and_interleave_over_workers() -> None:
    one = list(islice(offsets_ns(10, "constant"), 4))
    assert one == [0, 100 * MS, 200 * MS, 300 * MS]
    w0 = list(islice(offsets_ns(10, "constant", 0, 2), 3))
    w1 = list(islice(offsets_ns(10, "constant", 1, 2), 3))
    assert sorted(w0 + w1) == [0, 100 * MS, 200 * MS, 300 * MS, 400 * MS, 500 * MS]


def test_poisson_arrivals_are_seeded_and_roughly_at_rate() -> None:
    a = list(islice(offsets_ns(100, "poisson", seed=7), 5000))
    assert a == list(islice(offsets_ns(100, "poisson", seed=7), 5000))
    assert a == sorted(a)
    rate = len(a) / (a[-1] / 1e9)
    assert 90 < rate < 110
    with pytest.raises(ValueError, match="rate"):
        next(offsets_ns(0, "poisson"))


def test_receive_lag_is_receive_time_minus_the_frames_server_stamp() -> None:
    """Sessions: the worst (receive − tsMs) over content frames, on the wall clock."""
    import time

    from chatconform.load.stream import receive_lag_ms
    from chatconform.sse import SSEParser

    now_ms = time.time_ns() / 1e6
    offset_ns = time.time_ns() - time.perf_counter_ns()
    parser = SSEParser()
    frames = []
    for lag, delta in ((5, "a"), (40, "b")):
        data = {
            "eventType": "agent_message",
            "tsMs": int(now_ms - lag),
            "payload": {"delta": delta},
        }
        frames.append(b"event: agent_message\ndata: " + json.dumps(data).encode() + b"\n\n")
    received_ns = int(now_ms * 1e6) - offset_ns  # both frames read "now" on the monotonic clock
    events = parser.feed(b"".join(frames), received_ns)
    lag = receive_lag_ms(events)
    assert lag is not None
    assert 39 <= lag <= 42  # the worst of the two, give or take the stamps' millisecond
    assert receive_lag_ms(parser.feed(frame("done", {}), received_ns)) is None


def test_the_client_health_restarts_after_the_warm_up() -> None:
    """What the client's own health saw in the warm-up (read lag, loop lag, CPU) is forgotten at
    its end, so a saturated start cannot mark the measured part as saturated."""
    from chatconform.load.health import HealthMonitor, merge

    monitor = HealthMonitor("local")
    for _ in range(100):
        monitor.add_read_lag(80_000_000)  # 80 ms late: the start-up burst
    assert merge([monitor.report()])["read_lag_p99_ms"] >= 79
    monitor.restart()
    monitor.add_read_lag(2_000_000)
    report = merge([monitor.report()])
    assert 1.9 <= report["read_lag_p99_ms"] <= 2.1


def test_a_settle_queue_that_overflowed_marks_the_client_saturated() -> None:
    """A client that never went idle ran the checks of finished streams between reads: flagged,
    with the backlog it reached; one that always caught up is not."""
    from chatconform.load.health import HealthMonitor, merge

    base = HealthMonitor("local").report()
    calm = merge([base | {"settle_backlog_max": 40, "settled_inline": 0}])
    assert calm["settle_backlog_max"] == 40
    assert not any("idle" in r for r in calm["saturation_reasons"])
    busy = merge([base | {"settle_backlog_max": 1024, "settled_inline": 0},
                  base | {"settle_backlog_max": 1024, "settled_inline": 7}])  # fmt: skip
    assert busy["saturated"]
    assert busy["settled_inline"] == 7
    assert any(r.startswith("7 finished streams") for r in busy["saturation_reasons"])
