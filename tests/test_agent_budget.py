"""The agent bill and its cap (issue 15): what counts as an agent call, the shared ledger, the client's
refusal, what a refused request does to the verdicts, the gate for timing-sensitive tests, and a run
with a small cap (SKIP naming the limit, the counts) beside one with the default (every rule judged)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from tests.harness import CliRun, chatconform, reference

from chatconform.agentcalls import AgentCalls, bill_line, invokes_agent, reported_tokens
from chatconform.budget import Budget
from chatconform.client import Client
from chatconform.gate import Gate
from chatconform.plugin import TestRecord, _cases_within_limit, _within_limit
from chatconform.record import Exchange, StreamRecord
from chatconform.target import Limits
from chatconform.verdicts import Finding, Outcome

BASE = "http://127.0.0.1:9/api/v1"


def answered(method: str, path: str, status: int, body: object = None) -> Exchange:
    ex = Exchange(method, BASE + path, {})
    ex.status = status
    ex.headers = {"content-type": "application/json"}
    ex.body = json.dumps(body).encode() if body is not None else b""
    return ex


# -- what counts --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "agent"),
    [
        ("POST", "/chat/completions", True),
        ("POST", "/chat/sessions/s-1/messages", True),
        ("POST", "/chat/sessions/s-1/messages/", True),
        ("GET", "/chat/sessions/s-1/messages", False),  # history: no agent
        ("POST", "/chat/sessions", False),  # a new session: no agent
        ("POST", "/chat/sessions/s-1/end", False),
        ("POST", "/chat/sessions/messages", False),  # not a session's messages
    ],
)
def test_which_requests_invoke_the_agent(method: str, path: str, agent: bool) -> None:
    assert invokes_agent(method, BASE + path) is agent


def test_tokens_from_usage_plain_streamed_or_absent() -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    assert reported_tokens(answered("POST", "/chat/completions", 200, {"usage": usage})) == 12
    parts = {"prompt_tokens": 3, "completion_tokens": 4}  # no total: the sum of the parts
    assert reported_tokens(answered("POST", "/chat/completions", 200, {"usage": parts})) == 7
    assert reported_tokens(answered("POST", "/chat/completions", 200, {"id": "x"})) is None
    odd = {"total_tokens": "12"}  # not a count: not reported
    assert reported_tokens(answered("POST", "/chat/completions", 200, {"usage": odd})) is None
    ex = answered("POST", "/chat/completions", 200)
    ex.headers = {"content-type": "text/event-stream"}
    ex.stream = StreamRecord()
    chunk = {"object": "chat.completion.chunk", "choices": [], "usage": usage}
    ex.stream.feed(b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n', 1)
    ex.stream.feed(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode(), 2)
    ex.stream.close("eof")
    assert reported_tokens(ex) == 12


# -- the ledger ---------------------------------------------------------------------------------
def test_cap_is_held_in_flight_and_given_back_unless_accepted(tmp_path: Path) -> None:
    ledger = AgentCalls(2, tmp_path / "ledger.json")
    ledger.suite = "history"
    assert ledger.claim() is None
    assert ledger.claim() is None
    refused = ledger.claim()  # two in flight: none left, though none was accepted yet
    assert refused == "not sent: agent-call budget spent (--max-agent-calls 2)"
    ledger.settle(answered("POST", "/chat/sessions/s/messages", 400, {"status": 400}))
    assert ledger.left() == 1  # a rejected request ran no agent: its call is given back
    ledger.settle(answered("POST", "/chat/completions", 200, {"usage": {"total_tokens": 9}}))
    assert ledger.left() == 1
    assert ledger.claim() is None
    ledger.settle(answered("POST", "/chat/completions", 201, {}))
    assert ledger.left() == 0
    summary = ledger.to_json()
    assert summary["calls"] == 2
    assert summary["tokens"] == 9
    assert summary["callsWithUsage"] == 1
    assert summary["refused"] == 1
    assert summary["maxCalls"] == 2
    assert summary["bySuite"] == {"history": {"calls": 2, "tokens": 9, "refused": 1}}
    assert ledger.refused_here == 1
    # another process of the run (an xdist worker) reads and spends the same ledger
    other = AgentCalls(2, tmp_path / "ledger.json")
    assert other.left() == 0
    assert other.claim() is not None
    assert "2 of 2" in bill_line(other.to_json())
    assert "2 requests not sent" in bill_line(other.to_json())


def test_no_cap_counts_everything(tmp_path: Path) -> None:
    ledger = AgentCalls(None, tmp_path / "ledger.json")
    for _ in range(5):
        assert ledger.claim() is None
        ledger.settle(answered("POST", "/chat/completions", 200, {}))
    assert ledger.left() is None
    assert ledger.to_json()["calls"] == 5
    assert "(no cap)" in bill_line(ledger.to_json())


def test_concurrent_claims_never_exceed_the_cap(tmp_path: Path) -> None:
    ledger = AgentCalls(5, tmp_path / "ledger.json")
    granted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            ok = ledger.claim() is None
            with lock:
                granted.append(ok)
            if ok:
                ledger.settle(answered("POST", "/chat/completions", 200, {}))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(granted) == 5
    assert len(granted) == 20
    assert ledger.to_json()["calls"] == 5
    assert ledger.to_json()["refused"] == 15


# -- the client -----------------------------------------------------------------------------------
def test_client_refuses_beyond_the_cap_and_counts_what_reached_the_agent(tmp_path: Path) -> None:
    with reference() as server:
        target = _target(server)
        ledger = AgentCalls(1, tmp_path / "ledger.json")
        ledger.suite = "completions"
        with Client(target, budget=Budget(Limits(), ledger)) as api:
            assert target.agent_id is not None
            bad = api.completion({"model": target.agent_id})  # no messages: 400, no agent
            assert bad.status == 400
            assert ledger.to_json()["calls"] == 0
            user = [{"role": "user", "content": "What are your opening hours?"}]
            ok = api.completion({"model": target.agent_id, "messages": user})
            assert ok.status == 200
            over = api.completion({"model": target.agent_id, "messages": user})
            assert over.not_sent
            assert over.status is None
            assert over.limit == "agent-call budget spent (--max-agent-calls 1)"
            assert over.error == "not sent: agent-call budget spent (--max-agent-calls 1)"
            session = api.create_session(target.agent_id)  # not an agent call: still sent
            assert session.status == 201
            sid = session.json()["data"]["id"]
            assert api.post_message(sid, "hello").not_sent
            assert api.get_session(sid).status == 200
    bill = ledger.to_json()
    assert bill["calls"] == 1
    usage = ok.json()["usage"]
    assert bill["tokens"] == usage["total_tokens"] > 0
    assert bill["refused"] == 2
    assert bill["bySuite"]["completions"]["calls"] == 1


def test_sdk_calls_are_counted_and_capped(tmp_path: Path) -> None:
    """OAI-5's SDK completions reach the agent outside chatconform's client: the same ledger."""
    from chatconform import sdk

    with reference() as server:
        target = _target(server)
        ledger = AgentCalls(1, tmp_path / "ledger.json")
        body = {"model": target.agent_id, "messages": [{"role": "user", "content": "hours?"}]}
        plain, streamed = sdk.run_python(target, body, Budget(Limits(), ledger))
    assert plain.error is None, plain.error
    assert plain.exchange is not None
    assert plain.exchange.status == 200
    assert streamed.exchange is not None
    assert streamed.exchange.not_sent
    assert streamed.exchange.limit == "agent-call budget spent (--max-agent-calls 1)"
    bill = ledger.to_json()
    assert (bill["calls"], bill["refused"]) == (1, 1)
    assert bill["tokens"] > 0
    assert ledger.left() == 0


def _target(server: object):  # type: ignore[no-untyped-def]
    from chatconform.target import Target, read_target_file

    values = read_target_file(server.credentials)  # type: ignore[attr-defined]
    return Target(**values, embedded=True)  # type: ignore[arg-type]


# -- what a refusal does to the verdicts -----------------------------------------------------------
def test_a_test_cut_short_by_the_cap_judges_only_what_came_before() -> None:
    first = answered("POST", "/chat/sessions", 500, {"oops": 1})  # answered before the refusal
    refused = Exchange("POST", BASE + "/chat/sessions/s/messages", {})
    refused.not_sent = True
    refused.limit = "agent-call budget spent (--max-agent-calls 3)"
    later = answered("GET", "/chat/sessions/s/messages", 200, {"data": []})
    log = [first, refused, later]
    found = Outcome(
        [
            Finding("SES-1", "201", "500", exchange=first),
            Finding("SSE-5", "a terminal frame", "no response", exchange=refused, kind="budget"),
            Finding("MSG-5", "the reply in the history", "none", exchange=later),
            Finding("MSG-5", "texts equal", "None"),  # no exchange: a comparison after the refusal
        ]
    )
    found.saw("MSG-5").saw("SES-1").saw("SES-4")
    every = Outcome([Finding("ERR-4", "no 5xx", "500", exchange=first)])
    every.saw("ERR-4")
    kept = _within_limit(found, every, log, ["SSE-5", "MSG-5"], refused.limit)
    assert [(f.rule, f.exchange is first) for f in kept] == [("SES-1", True), ("ERR-4", True)]
    assert ("MSG-5", "all") not in kept.examined  # aimed at, not played to the end
    assert kept.examined[("SES-4", "all")] == 1  # seen in passing: kept
    assert kept.examined[("ERR-4", "all")] == 1
    assert kept.unexercised[("MSG-5", "all")] == refused.limit
    assert kept.unexercised[("SSE-5", "all")] == refused.limit


def test_a_fuzz_test_cut_short_by_the_cap_keeps_what_its_cases_showed() -> None:
    """Fuzz cases are judged one by one: the cases that were sent keep their findings and their
    evidence, even for the rules the test aims at; only a clause nothing examined is 'not
    exercised' naming the limit (a clause with its own reason keeps it)."""
    limit = "agent-call budget spent (--max-agent-calls 3)"
    sent = answered("POST", "/chat/completions", 500, {"oops": 1})
    found = Outcome([Finding("ERR-4", "no 5xx", "500", exchange=sent)])
    found.saw("MSG-1", n=4).saw("SSE-6", "done").saw("ERR-4")
    found.not_exercised("SSE-6", "error", "the target gave no --error-prompt")
    kept = _cases_within_limit(found, ["MSG-1", "OAI-4", "SSE-6", "ERR-4"], limit)
    assert kept.examined[("MSG-1", "all")] == 4  # aimed at, and kept
    assert kept.examined[("SSE-6", "done")] == 1
    assert [f.rule for f in kept] == ["ERR-4"]
    assert kept.unexercised[("OAI-4", "all")] == limit  # nothing examined it: the cap's doing
    assert kept.unexercised[("SSE-6", "error")] == "the target gave no --error-prompt"
    assert ("MSG-1", "all") not in kept.unexercised
    assert ("ERR-4", "all") not in kept.unexercised


def test_a_record_travels_from_a_worker_to_the_controller() -> None:
    rec = TestRecord("suites/test_x.py::test_y")
    rec.findings = [
        Finding("SSE-4", "a tool_call", "none", level="C", clause="tool_call", kind="target")
    ]
    rec.evidence.update({("SSE-4", "delta"): 3})
    rec.unexercised = {("SSE-4", "kb_retrieval"): "agent-call budget spent (--max-agent-calls 1)"}
    rec.skipped = {"SSE-8": "not reached"}
    rec.exercised = ["SSE-4"]
    rec.fuzz_seed = 7
    back = TestRecord.from_json(rec.to_json())
    assert back == rec


# -- the gate -------------------------------------------------------------------------------------
def test_gate_runs_an_exclusive_test_alone_and_before_later_shared_ones(tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    events: list[str] = []
    release_a = threading.Event()
    b_waiting = threading.Event()

    def a() -> None:
        with gate.shared():
            events.append("a in")
            release_a.wait(10)
            events.append("a out")

    def b() -> None:
        b_waiting.set()
        with gate.exclusive():
            events.append("b in")
            time.sleep(0.2)
            events.append("b out")

    def c() -> None:
        with gate.shared():
            events.append("c in")

    ta = threading.Thread(target=a)
    ta.start()
    _wait_for(lambda: "a in" in events)
    tb = threading.Thread(target=b)
    tb.start()
    b_waiting.wait(5)
    time.sleep(0.2)  # b now waits for a, holding the turnstile
    tc = threading.Thread(target=c)
    tc.start()
    time.sleep(0.2)
    assert events == ["a in"]  # neither b (a holds the shared lock) nor c (b is waiting)
    release_a.set()
    for t in (ta, tb, tc):
        t.join(10)
    assert events == ["a in", "a out", "b in", "b out", "c in"]


def _wait_for(cond, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.01)


# -- whole runs on the fast reference ---------------------------------------------------------------
SMALL_CAP = 3
SUITES = ("--suite", "streaming", "--suite", "completions")


def test_small_cap_skips_with_its_reason_and_default_judges_all(tmp_path: Path) -> None:
    with reference() as server:
        target = ("--target-file", str(server.credentials), *SUITES, "--concurrency", "1")
        full = chatconform("run", "--strict", *target, report_dir=tmp_path / "all")
        capped = chatconform(
            "run", "--strict", *target, "--max-agent-calls", str(SMALL_CAP),
            report_dir=tmp_path / "capped",
        )  # fmt: skip
    reason = f"agent-call budget spent (--max-agent-calls {SMALL_CAP})"
    assert full.code == 0, full.stdout[-3000:] + full.stderr[-2000:]
    bill = full.summary["agent"]
    assert bill["refused"] == 0
    assert bill["maxCalls"] == 60
    assert (
        bill["calls"]
        == bill["bySuite"]["streaming"]["calls"] + bill["bySuite"]["completions"]["calls"]
    )
    assert bill["bySuite"]["streaming"]["calls"] >= 4
    assert bill["tokens"] > 0  # the reference's completions report usage
    assert "agent calls:" in full.stdout
    assert not [r for r in full.summary["rules"] if reason in r["reason"]]

    assert capped.code == 0, capped.stdout[-3000:] + capped.stderr[-2000:]
    cbill = capped.summary["agent"]
    assert cbill["calls"] == SMALL_CAP
    assert cbill["maxCalls"] == SMALL_CAP
    assert cbill["refused"] > 0
    assert f"requests not sent: {reason}" in " ".join(capped.stdout.split())
    before = full.verdicts()
    after = capped.verdicts()
    by_id = {r["id"]: r for r in capped.summary["rules"]}
    # rules of the selected suites (others are only seen in passing, and SKIP 'not selected')
    lost = {
        rid
        for rid, v in before.items()
        if v == "PASS" and after[rid] != "PASS" and by_id[rid]["family"] in SUITES
    }
    assert lost, "a cap of 3 should leave some rule unexercised"
    for rid in lost:
        assert by_id[rid]["verdict"] == "SKIP", by_id[rid]
        assert reason in by_id[rid]["reason"] or any(
            reason in c["reason"] for c in by_id[rid]["clauses"]
        ), by_id[rid]
    assert not {rid for rid, v in after.items() if v in ("FAIL", "ERROR")}
    page = (tmp_path / "capped" / "summary.html").read_text(encoding="utf-8")
    assert 'id="agent-bill"' in page
    assert f"agent calls: {SMALL_CAP} of {SMALL_CAP}" in page
    assert reason in (tmp_path / "capped" / "summary.md").read_text(encoding="utf-8")
    assert not {rid for rid, v in after.items() if v == "PASS" and before[rid] != "PASS"}


def test_concurrency_keeps_the_verdicts_and_the_bill(tmp_path: Path) -> None:
    """The same suites one at a time and in two xdist workers: the same verdicts, the same agent
    calls per suite, and the timing-sensitive tests (here SSE-8, MSG-6, MSG-7) still judged."""
    suites = ("--suite", "streaming", "--suite", "history")
    with reference() as server:
        target = ("--target-file", str(server.credentials), *suites, "--seed", "3")
        one = chatconform(
            "run", "--strict", *target, "--concurrency", "1", report_dir=tmp_path / "1"
        )
        two = chatconform(
            "run", "--strict", *target, "--concurrency", "2", report_dir=tmp_path / "2"
        )
    assert one.code == 0, one.stdout[-3000:] + one.stderr[-2000:]
    assert two.code == 0, two.stdout[-3000:] + two.stderr[-2000:]
    assert two.verdicts() == one.verdicts()
    for rid in ("SSE-8", "MSG-6", "MSG-7"):
        assert two.verdicts()[rid] == "PASS"
    by_suite = {k: v["calls"] for k, v in one.summary["agent"]["bySuite"].items()}
    assert {k: v["calls"] for k, v in two.summary["agent"]["bySuite"].items()} == by_suite
    assert by_suite["streaming"] > 0
    assert by_suite["history"] > 0

    def exercised(run: CliRun) -> dict[str, list[str]]:
        # whether the reference answers the second of two concurrent posts 409 session_busy (an
        # error response, judged by the error rules) depends on timing, in either mode
        racy = "test_history.py::test_concurrent_posts"
        return {
            r["id"]: sorted(t for t in r["tests"] if r["family"] != "errors" or t != racy)
            for r in run.summary["rules"]
        }

    assert exercised(two) == exercised(one)


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--max-agent-calls", "-3"], "--max-agent-calls must be a count >= 0 or 'none'"),
        (["--max-agent-calls", "many"], "--max-agent-calls must be a count >= 0 or 'none'"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
    ],
)
def test_bad_budget_options_are_one_line_usage_errors(
    args: list[str], phrase: str, tmp_path: Path
) -> None:
    run = chatconform("run", *args, report_dir=tmp_path)
    assert run.code == 2
    assert run.stderr.strip() == f"chatconform: {phrase}" or phrase in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr
