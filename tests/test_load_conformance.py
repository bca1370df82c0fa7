"""Conformance under load, SLO attainment and goodput, the new gates, and `serve --fault-rate`.

Units on synthetic samples first; then `chatconform load` end to end against the reference with a
fault that hits a share of the streams (the run fails naming the rule and the share), against a
reference that is correct in ways ours is not by default (wire variations: no violation), and
with SLO objectives either side of the injected TTFT.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatconform.client import Client
from chatconform.embedded import EmbeddedServer
from chatconform.load import conformance
from chatconform.load import slo as slo_mod
from chatconform.load import summary as summary_mod
from chatconform.load import thresholds as th
from chatconform.load.metrics import EndpointMetrics, RunMetrics
from chatconform.record import Exchange, StreamRecord
from chatconform.reference.faults import FAULT_HIT, Switches
from chatconform.spec import fast_valid, validator

PROMPT = "Hello! Please answer briefly."


def sample(
    ttft: float = 100.0,
    gaps: tuple[float, ...] = (10.0, 10.0),
    outcome: str = "ok",
    violations: list[dict[str, str]] | None = None,
    checked: bool = True,
    rid: str = "0-1",
) -> dict[str, Any]:
    content = [ttft]
    for g in gaps:
        content.append(content[-1] + g)
    return {
        "endpoint": "sessions",
        "worker": 0,
        "wall": 1000.0,
        "outcome": outcome,
        "status": 200,
        "error": None,
        "bytes": 10,
        "dispatch_ms": 0.0,
        "sent_ms": 0.0,
        "headers_ms": 5.0,
        "first_event_ms": 5.0,
        "content_ms": content if outcome == "ok" else content[:1],
        "terminal_ms": content[-1] + 1 if outcome == "ok" else None,
        "close_ms": content[-1] + 2,
        "id": rid,
        "output_tokens": None,
        "token_source": "chunks",
        "checked": checked,
        "violations": violations or [],
    }


# -- SLO ------------------------------------------------------------------------------------------


def test_slo_parse_rejects_what_it_cannot_judge() -> None:
    assert slo_mod.parse("ttft_ms=250, itl_ms=50") == {"ttft_ms": 250.0, "itl_ms": 50.0}
    assert slo_mod.parse("") == {}
    for bad in ("ttft=250", "ttft_ms", "ttft_ms=x", "ttft_ms=0", "p99_ms=3"):
        with pytest.raises(slo_mod.SLOError):
            slo_mod.parse(bad)


def test_attainment_counts_errors_incomplete_and_violations_as_misses() -> None:
    m = EndpointMetrics({"ttft_ms": 150.0, "itl_ms": 40.0})
    m.add(sample(ttft=100))  # attains
    m.add(sample(ttft=200))  # TTFT over
    m.add(sample(ttft=100, gaps=(10.0, 60.0)))  # its worst gap over (the mean would pass)
    m.add(sample(ttft=100, outcome="incomplete"))
    m.add(sample(ttft=100, outcome="http_error", checked=False))
    violation = {"rule": "SSE-7", "level": "C", "message": "seq"}
    m.add(sample(ttft=100, violations=[violation]))  # fast but not conformant
    m.add(sample(ttft=100, outcome="censored"))
    slo = m.summary()["slo"]
    assert (slo["attained"], slo["requests"]) == (1, 7)
    assert slo["attainment"] == pytest.approx(1 / 7, abs=1e-6)
    assert slo["goodput_rps"] > 0


def test_a_single_token_reply_has_no_gap_to_fail_but_needs_its_ttft() -> None:
    assert slo_mod.attains({"itl_ms": 1, "tpot_ms": 1}, True, False, {"stall_ms": None})
    assert not slo_mod.attains({"ttft_ms": 100}, True, False, {"ttft_ms": None})


# -- conformance counting and gates ---------------------------------------------------------------


def test_conformance_counts_streams_per_rule_with_an_example() -> None:
    m = EndpointMetrics()
    sse5 = {"rule": "SSE-5", "level": "D", "message": "expected done; got eof"}
    sse7 = {"rule": "SSE-7", "level": "C", "message": "seq 3"}
    m.add(sample(rid="0-1"))
    m.add(sample(rid="0-2", violations=[sse5]))
    m.add(sample(rid="1-1", violations=[sse5, sse7]))
    m.add(sample(rid="1-2", outcome="http_error", checked=False))
    c = m.summary()["conformance"]
    assert (c["checked"], c["violating"]) == (3, 2)
    assert c["by_rule"] == {"SSE-5": 2, "SSE-7": 1}
    assert c["example"] == {"rule": "SSE-5", "message": sse5["message"], "request_id": "0-2"}
    assert c["violation_rate"] == pytest.approx(2 / 3, abs=1e-6)


def test_violation_gate_fails_naming_rule_and_share_even_when_saturated() -> None:
    metrics = RunMetrics()
    sse5 = {"rule": "SSE-5", "level": "D", "message": "no terminal frame"}
    for n in range(20):
        metrics.add(sample(rid=f"0-{n}", violations=[sse5] if n == 3 else None))
    gates = th.from_values({"max_violation_rate": 0.0})
    saturated = {"role": "local", "pid": 1, "cpu_percent": 99.0, "loop_lag_p99_ms": 50.0}
    s = summary_mod.build(metrics, [saturated], gates, {"rate": 0})
    assert s["verdict"] == "FAIL"  # a broken rule is no artefact of a slow client
    assert "SSE-5 on 1 of 20 checked streams (5.00%)" in s["reasons"][0]
    assert "request 0-3" in s["reasons"][0]


def test_min_gates_hold_at_or_above_their_limit() -> None:
    metrics = RunMetrics({"ttft_ms": 150.0})
    for ttft in (100, 100, 100, 200):
        metrics.add(sample(ttft=ttft))
    gates = th.from_values({"min_slo_attainment": 0.75})
    s = summary_mod.build(metrics, [], gates, {"rate": 0})
    assert s["thresholds"][0]["passed"]
    assert s["verdict"] == "PASS"
    gates = th.from_values({"min_slo_attainment": 0.8, "min_goodput_rps": 1e9})
    s = summary_mod.build(metrics, [], gates, {"rate": 0})
    assert [t["passed"] for t in s["thresholds"]] == [False, False]
    assert "slo.attainment 0.75 < 0.8" in s["reasons"][0]


# -- what is judged; the fast schema path is never more lenient -----------------------------------


def _stream_exchange(ended_by: str, status: int = 200, timed_out: bool = False) -> Exchange:
    ex = Exchange("POST", "http://h/api/v1/chat/completions", {}, b"{}")
    ex.status = status
    ex.headers = {"content-type": "text/event-stream"}
    ex.stream = StreamRecord()
    ex.stream.feed(b"data: [DONE]\n\n", 1)
    ex.stream.close(ended_by)
    ex.timed_out = timed_out
    return ex


def test_judged_only_what_the_server_ended() -> None:
    assert conformance.judged(_stream_exchange("eof"))
    assert not conformance.judged(_stream_exchange("timeout", timed_out=True))
    assert not conformance.judged(_stream_exchange("byte-cap"))
    assert not conformance.judged(_stream_exchange("eof", status=503))


@pytest.fixture(scope="module")
def reference_frames() -> dict[str, list[Any]]:
    """Real instances of each schema the stream checks validate, from the reference."""
    knobs = ["--ttft-ms", "1", "--itl-ms", "1", "--tokens", "4"]
    with EmbeddedServer(knobs) as target, Client(target) as c:
        sid = c.create_session(target.agent_id).json()["data"]["id"]
        ex = c.post_message(sid, "hours 94107", stream=True)  # a tool call and a retrieval
        body = {"model": target.agent_id, "messages": [{"role": "user", "content": "hi"}]}
        cx = c.completion(body | {"stream": True})
    out: dict[str, list[Any]] = {name: [] for name in conformance.SCHEMAS}
    assert ex.stream is not None
    assert cx.stream is not None
    for e in ex.stream.events:
        data = json.loads(e.data)
        if e.type == "done":
            out["Message"] += data["messages"]
            continue
        out["AuditEvent"].append(data)
        shape = {
            "agent_message": "AgentMessagePayload",
            "tool_call": "ToolCallPayload",
            "kb_retrieval": "KbRetrievalPayload",
        }.get(e.type)
        if shape:
            out[shape].append(data["payload"])
    out["ChatCompletionChunk"] = [json.loads(e.data) for e in cx.stream.events[:-1]]
    return out


def _mutations(value: Any) -> Iterator[Any]:
    """Each member of each object removed or replaced by a wrong-typed value, one at a time."""
    if isinstance(value, dict):
        for key in list(value):
            for bad in ("__drop__", None, 12345, "", [], {}, -1, "not-a-date"):
                mutated = copy.deepcopy(value)
                if bad == "__drop__":
                    del mutated[key]
                else:
                    mutated[key] = bad
                yield mutated
            for inner in _mutations(value[key]):
                mutated = copy.deepcopy(value)
                mutated[key] = inner
                yield mutated
    elif isinstance(value, list) and value:
        for inner in _mutations(value[0]):
            yield [inner, *value[1:]]


def test_fast_schema_path_never_passes_what_the_validator_fails(
    reference_frames: dict[str, list[Any]],
) -> None:
    compared = 0
    for name, instances in reference_frames.items():
        assert instances, name
        for instance in instances[:3]:
            assert fast_valid(name, instance), (name, instance)  # the common case is fast
            for mutated in _mutations(instance):
                if fast_valid(name, mutated):
                    errors = list(validator(name).iter_errors(mutated))
                    assert not errors, (name, mutated, errors[0].message)
                compared += 1
    assert compared > 500


# -- serve --fault-rate ---------------------------------------------------------------------------


def test_fault_rate_hits_about_that_share_of_requests() -> None:
    always = Switches("no-terminal")
    assert all(always.draw() for _ in range(100))
    some = Switches("no-terminal", fault_rate=0.2)
    hits = sum(some.draw() for _ in range(4000))
    assert 600 < hits < 1000
    token = FAULT_HIT.set(False)
    try:
        assert not some.fault_is("no-terminal")
    finally:
        FAULT_HIT.reset(token)
    assert some.fault_is("no-terminal")
    assert not some.fault_is("seq-gap")
    with pytest.raises(ValueError, match="fault_rate"):
        Switches("no-terminal", fault_rate=0.0)


# -- end to end -----------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWYTE_", "LOCUST_"))}
    env.pop("CHATCONFORM_REFERENCE_ARGS", None)
    return env | extra


def load_against(
    server_args: list[str], load_args: list[str], report_dir: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    with EmbeddedServer(server_args) as target:
        env = _env(FLOWYTE_API_KEY=target.api_key or "", FLOWYTE_AGENT_ID=target.agent_id or "")
        cmd = [sys.executable, "-m", "chatconform.load", "--base-url", target.base_url]
        cmd += ["--report-dir", str(report_dir), "--stream-timeout", "10", *load_args]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    path = report_dir / "load-summary.json"
    assert path.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(path.read_text())


def test_a_fault_on_a_share_of_streams_fails_the_run_naming_rule_and_share(
    tmp_path: Path,
) -> None:
    proc, s = load_against(
        [
            "--ttft-ms",
            "5",
            "--itl-ms",
            "2",
            "--tokens",
            "6",
            "--fault",
            "no-terminal",
            "--fault-rate",
            "0.25",
        ],
        ["--endpoint", "sessions", "--users", "4", "--run-time", "4s", "--max-violation-rate", "0"],
        tmp_path,
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    conf = s["endpoints"]["sessions"]["conformance"]
    assert conf["by_rule"].get("SSE-5", 0) > 0
    assert 0 < conf["violating"] < conf["checked"]  # a share of the streams, not all of them
    assert s["verdict"] == "FAIL"
    assert "SSE-5 on" in proc.stdout
    assert "checked streams (" in proc.stdout
    assert conf["example"]["rule"] == "SSE-5"
    evidence = [
        json.loads(x) for x in (tmp_path / "load-violations.jsonl").read_text().split("\n") if x
    ]
    assert evidence
    assert evidence[0]["rule"] == "SSE-5"
    assert "curl" in evidence[0]["reproduce"]
    for f in tmp_path.iterdir():
        assert "flowyte_sk_" not in f.read_text(errors="replace"), f.name


def test_a_lenient_but_correct_wire_breaks_no_rule_under_load(tmp_path: Path) -> None:
    """CRLF line ends, comment lines, data split over several lines: legal, so no violation."""
    variations = ["--variation", "crlf", "--variation", "keepalive", "--variation", "split-data"]
    proc, s = load_against(
        ["--ttft-ms", "5", "--itl-ms", "2", "--tokens", "6", *variations],
        ["--users", "4", "--run-time", "3s", "--max-violation-rate", "0"],
        tmp_path,
    )
    for name, ep in s["endpoints"].items():
        assert ep["conformance"]["checked"] > 0, name
        assert ep["conformance"]["violating"] == 0, (name, ep["conformance"])
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_slo_attainment_either_side_of_the_injected_ttft(tmp_path: Path) -> None:
    """TTFT is at least the injected 200 ms: an objective of 150 ms is never met; one of 600 ms
    is nearly always met (a wide margin: this machine is shared and the server shares it)."""
    server = ["--ttft-ms", "200", "--itl-ms", "5", "--tokens", "4"]
    base = ["--endpoint", "completions", "--users", "4", "--run-time", "3s"]
    _, low = load_against(server, [*base, "--slo", "ttft_ms=150"], tmp_path / "low")
    proc, high = load_against(
        server, [*base, "--slo", "ttft_ms=600", "--min-slo-attainment", "0.5"], tmp_path / "high"
    )
    lo, hi = low["endpoints"]["completions"]["slo"], high["endpoints"]["completions"]["slo"]
    assert lo["attainment"] == 0.0
    assert lo["goodput_rps"] == 0.0
    assert hi["attainment"] >= 0.8
    assert hi["goodput_rps"] > 0
    assert hi["objectives"] == {"ttft_ms": 600.0}
    assert proc.returncode == 0, proc.stdout[-3000:]
