"""Locust wiring: custom options, the per-process LoadContext, sample merging and the summary.

Imported by the locustfile (``loadtests/locustfile.py``), so it runs inside Locust's processes:
the local runner, or a master and its workers. The master (or the local process) owns the
Aggregator; workers ship raw samples to it with a custom message. The run's end is driven here
(``--run-time`` is taken over from Locust). When the run time is reached every process stops
starting requests (a master tells its workers with a custom message) and waits until the
requests in flight have ended, at most one stream timeout plus a little (each request is bounded
by its own stream deadline anyway); workers say when they have drained. Only then
``runner.stop()`` (which on a master waits until every worker has stopped; workers flush their
last samples before they report stopped, so no sample is lost to Locust's 0.5 s quit grace) and
``runner.quit()``. A request still in flight at ``runner.stop()`` (an interrupt, the grace ran
out) is recorded as censored with its elapsed time, never dropped.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from chatconform.load import conformance, handshake
from chatconform.load import slo as slo_mod
from chatconform.load import summary as summary_mod
from chatconform.load import thresholds as th
from chatconform.load.collect import (
    DRAIN_SLACK_S,
    DRAINED_MSG,
    FLUSH_S,
    HEALTH_MSG,
    PROGRESS_PREFIX,
    SAMPLES_MSG,
    STOP_MSG,
    SUMMARY_PREFIX,
    Aggregator,
    WorkerSink,
)
from chatconform.load.health import HealthMonitor
from chatconform.load.openloop import ARRIVALS
from chatconform.load.settle import Settler
from chatconform.load.timeline import CENSORED, DROPPED, OK, Timeline
from chatconform.record import Exchange
from chatconform.target import Limits, Target, TargetError, resolve_target

log = logging.getLogger("chatconform.load")
PROGRESS_S = 2.0
SETTLE_BOUND = 1024  # finished streams whose work may wait for idle moments; past it, done inline
EVIDENCE_PER_RULE = 1  # full evidence (request, frames, curl) kept per rule and process


@dataclass
class Settings:
    endpoint: str = "both"
    rate: float = 0.0
    arrival: str = "constant"
    seed: int = 1
    turns: int = 3
    max_inflight: int = 1000
    prompt: str = "Hello! Please answer briefly."
    report_dir: Path = field(
        default_factory=lambda: Path("reports") / time.strftime("%Y%m%d-%H%M%S")
    )
    timeout: float = 10.0
    stream_timeout: float = 30.0
    max_bytes: int = 8 * 1024 * 1024
    run_time: float | None = None
    gates: list[th.Threshold] = field(default_factory=list)
    objectives: dict[str, float] = field(default_factory=dict)
    checks: bool = True  # judge every stream with the suites' checks
    warm_up: float = 0.0  # seconds from the test's start: requests sent earlier are warm-up
    ask_usage: bool = True  # stream_options.include_usage on completions
    expect_workers: int = 1  # worker processes of the run (open-loop arrivals are split over them)

    @classmethod
    def from_options(cls, opts: Any) -> Settings:
        gates = th.from_values({k: getattr(opts, "cc_" + k, None) for k in th.GATES})
        try:
            objectives = slo_mod.parse(getattr(opts, "cc_slo", None))
        except slo_mod.SLOError as exc:
            raise SystemExit(f"chatconform: {exc}") from None
        return cls(
            endpoint=opts.cc_endpoint,
            rate=float(opts.cc_rate or 0.0),
            arrival=opts.cc_arrival,
            seed=int(opts.cc_seed),
            turns=int(opts.cc_turns),
            max_inflight=int(opts.cc_max_inflight),
            prompt=opts.cc_prompt,
            report_dir=Path(opts.cc_report_dir) if opts.cc_report_dir else cls().report_dir,
            timeout=float(opts.cc_timeout),
            stream_timeout=float(opts.cc_stream_timeout),
            max_bytes=int(opts.cc_max_bytes),
            gates=gates,
            objectives=objectives,
            checks=not getattr(opts, "cc_no_checks", False),
            warm_up=max(float(getattr(opts, "cc_warm_up", 0.0) or 0.0), 0.0),
            ask_usage=not getattr(opts, "cc_no_usage", False),
            expect_workers=max(int(getattr(opts, "expect_workers", 1) or 1), 1),
        )

    # what a master hands its workers (handshake): the run as the master was told to run it
    WIRE = (
        "endpoint", "rate", "arrival", "seed", "turns", "max_inflight", "prompt", "timeout",
        "stream_timeout", "max_bytes", "checks", "ask_usage", "expect_workers", "warm_up",
    )  # fmt: skip

    def wire(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.WIRE}

    def adopt(self, values: dict[str, Any]) -> None:
        for k in self.WIRE:
            if k in values:
                setattr(self, k, values[k])

    def public(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "rate": self.rate or None,
            "arrival": self.arrival if self.rate else None,
            "seed": self.seed if self.rate else None,
            "turns_per_session": self.turns,
            "run_time_s": self.run_time,
            "timeout_s": self.timeout,
            "stream_timeout_s": self.stream_timeout,
            "max_bytes": self.max_bytes,
            "conformance_checks": self.checks,
            "warm_up_s": self.warm_up,
            "include_usage": self.ask_usage,
            "slo": dict(self.objectives) or None,
        }


class LoadContext:
    """Per-process state shared by the users of one Locust process."""

    def __init__(self, environment: Environment, settings: Settings) -> None:
        self.environment = environment
        self.settings = settings
        runner = environment.runner
        self.role = (
            "master"
            if isinstance(runner, MasterRunner)
            else "worker"
            if isinstance(runner, WorkerRunner)
            else "local"
        )
        self.aggregator: Aggregator | None = None
        self.sink: WorkerSink | None = None
        self.health = HealthMonitor(self.role)
        self._target: Target | None = None
        self.started: float | None = None
        self.started_ns: int | None = None  # perf_counter_ns at the test's start (warm-up)
        self.finished = False
        self.stopping = False  # the run time is reached: no new request starts
        self.inflight = 0
        # a stream's timeline, checks and sample wait for idle moments, after the reads
        self.settler = Settler(SETTLE_BOUND)
        self.check_clock = conformance.CheckClock()
        self._ids = itertools.count(1)
        self._evidence: dict[str, int] = {}
        self.drained_workers: set[int] = set()
        self.ready = gevent.event.Event()  # a worker: the master said hello (settings adopted)
        if self.role != "worker":
            self.ready.set()
        self.workers_lost: set[str] = set()
        self.refusals: list[str] = []

    @property
    def drain_s(self) -> float:
        """How long the requests in flight at the end may take to finish."""
        return self.settings.stream_timeout + DRAIN_SLACK_S

    # -- target -------------------------------------------------------------------------------

    @property
    def target(self) -> Target:
        if self._target is None:
            s = self.settings
            limits = Limits(
                timeout=s.timeout, stream_timeout=s.stream_timeout, max_body_bytes=s.max_bytes
            )
            try:
                target = resolve_target(
                    {"base_url": self.environment.host},
                    os.environ.get("FLOWYTE_TARGET_FILE"),
                    limits,
                )
            except TargetError as exc:
                raise SystemExit(f"chatconform: {exc}") from None
            if target is None:
                raise SystemExit("chatconform: no target: give --host or FLOWYTE_BASE_URL")
            target.embedded = os.environ.get("CHATCONFORM_EMBEDDED_TARGET") == "1"
            self._target = target
        return self._target

    @property
    def worker_index(self) -> int:
        runner = self.environment.runner
        return max(getattr(runner, "worker_index", 0), 0)

    @property
    def workers(self) -> int:
        return max(self.settings.expect_workers, 1) if self.role == "worker" else 1

    def wait_ready(self) -> None:
        """A worker's users start once the master's hello (and settings) came, or after 30 s."""
        self.ready.wait(timeout=30)

    # -- distributed: hello, refusal, lost workers -------------------------------------------

    def say_hello(self) -> None:
        gevent.sleep(0.1)
        runner = self.environment.runner
        if runner is not None:
            runner.send_message(handshake.HELLO_MSG, {"identity": handshake.identity()})

    def on_hello_from_worker(self, msg: Any) -> None:
        """Master: answer a worker's hello with who we are and how the run goes."""
        runner = self.environment.runner
        theirs = (msg.data or {}).get("identity") or {}
        why = handshake.mismatch(theirs, handshake.identity())
        if why:
            log.warning("a worker (%s) will refuse this master: %s", msg.node_id, why)
        reply = {"identity": handshake.identity(), "settings": self.settings.wire()}
        runner.send_message(handshake.HELLO_MSG, reply, client_id=msg.node_id)  # type: ignore[union-attr]

    def on_hello_from_master(self, msg: Any) -> None:
        """Worker: refuse a master of another version or spec; else adopt its settings."""
        data = msg.data or {}
        why = handshake.mismatch(handshake.identity(), data.get("identity") or {})
        runner = self.environment.runner
        if why:
            line = f"worker {self.worker_index} refuses the master: {why}"
            print(SUMMARY_PREFIX + "refused: " + line, flush=True)
            runner.send_message(handshake.REFUSED_MSG, {"reason": line})  # type: ignore[union-attr]
            self.environment.process_exit_code = 2
            self.finished = True
            gevent.spawn_later(0.5, runner.quit)  # type: ignore[union-attr]
            return
        self.settings.adopt(data.get("settings") or {})
        self._target = None  # rebuilt with the master's limits
        self.ready.set()

    def on_refused(self, msg: Any) -> None:
        reason = str((msg.data or {}).get("reason"))
        self.refusals.append(reason)
        print(SUMMARY_PREFIX + "refused: " + reason, flush=True)

    def watch_workers(self) -> None:
        """Master: remember every worker that went missing (no heartbeat) during the run."""
        runner = self.environment.runner
        clients = getattr(runner, "clients", None)
        if clients is None:
            return
        for node in clients.missing:
            if node.id not in self.workers_lost:
                self.workers_lost.add(node.id)
                print(SUMMARY_PREFIX + f"worker {node.id} lost mid-run", flush=True)

    # -- samples ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        self.inflight += 1
        try:
            yield
        finally:
            self.inflight -= 1

    # -- conformance --------------------------------------------------------------------------

    def judge_session(self, tl: Timeline, ex: Exchange, session_id: str, content: str) -> None:
        self._judge(tl, ex, conformance.check_session, session_id, content)

    def judge_completion(self, tl: Timeline, ex: Exchange) -> None:
        self._judge(tl, ex, conformance.check_completion, self.target.agent_id or "")

    def in_warm_up(self, tl: Timeline) -> bool:
        """Sent (or, never sent, due) in the run's first --warm-up seconds."""
        if self.settings.warm_up <= 0 or self.started_ns is None:
            return False
        until = self.started_ns + round(self.settings.warm_up * 1e9)
        return (tl.t_sent if tl.t_sent is not None else tl.t_intended) < until

    def _judge(self, tl: Timeline, ex: Exchange, check: Any, *args: Any) -> None:
        if not self.in_warm_up(tl):  # the client's health, like the figures, after the warm-up
            self.health.add_read_lag(ex.read_lag_ns)
        if not self.settings.checks or not conformance.judged(ex):
            return
        try:
            found = self.check_clock.timed(check, ex, *args)
        except Exception as exc:  # a check's own failure is the harness's, never a violation
            log.exception("a conformance check failed")
            tl.error = tl.error or f"conformance check failed: {type(exc).__name__}: {exc}"[:300]
            return
        tl.checked = True
        tl.violations = conformance.summarize(found)
        if not tl.request_id:
            tl.request_id = self._next_id()
        for v in tl.violations:
            if self._evidence.get(v["rule"], 0) < EVIDENCE_PER_RULE:
                self._evidence[v["rule"]] = self._evidence.get(v["rule"], 0) + 1
                self._keep_evidence(tl, ex, v)

    def _keep_evidence(self, tl: Timeline, ex: Exchange, violation: dict[str, str]) -> None:
        evidence = {
            "request_id": tl.request_id,
            "endpoint": tl.endpoint,
            **violation,
            "reproduce": ex.curl(self.target),
            "evidence": ex.evidence(self.target),
        }
        if self.aggregator is not None:
            self.aggregator.add_evidence([evidence])
        elif self.sink is not None:
            self.sink.add_evidence(evidence)

    def _next_id(self) -> str:
        return f"{self.worker_index}-{next(self._ids)}"

    # -- samples ------------------------------------------------------------------------------

    def record(self, tl: Timeline) -> None:
        """Report a finished timeline to Locust's stats and to the merge point."""
        if self.finished:
            return
        tl.worker = self.worker_index
        if not tl.request_id:
            tl.request_id = self._next_id()
        self._fire(tl)
        sample = tl.to_sample(self.target.redact)
        if self.in_warm_up(tl):
            sample["warmup"] = True
        if self.aggregator is not None:
            self.aggregator.add([sample])
        elif self.sink is not None:
            self.sink.add(sample)

    def _fire(self, tl: Timeline) -> None:
        if tl.outcome in (CENSORED, DROPPED) or tl.t_sent is None:
            return
        fire = self.environment.events.request.fire
        ep = tl.endpoint
        if tl.outcome == OK and tl.t_terminal is not None:
            if tl.content:
                ttft = (tl.content[0] - tl.t_sent) / 1e6
                fire(
                    request_type="SSE",
                    name=f"{ep} TTFT",
                    response_time=ttft,
                    response_length=0,
                    exception=None,
                    context={},
                )
            e2e = (tl.t_terminal - tl.t_sent) / 1e6
            fire(
                request_type="SSE",
                name=f"{ep} E2E",
                response_time=e2e,
                response_length=tl.bytes,
                exception=None,
                context={},
            )
            return
        end = tl.t_close or tl.t_sent
        exc = RuntimeError(f"{tl.outcome}: {tl.error}" if tl.error else tl.outcome)
        fire(
            request_type="SSE",
            name=f"{ep} E2E",
            response_time=(end - tl.t_sent) / 1e6,
            response_length=tl.bytes,
            exception=exc,
            context={},
        )

    def fire_call(
        self, name: str, method: str, ms: float, status: int | None, error: str | None
    ) -> None:
        exc = None
        if error is not None or status is None or status >= 400:
            exc = RuntimeError(error or f"HTTP {status}")
        self.environment.events.request.fire(
            request_type=method,
            name=name,
            response_time=ms,
            response_length=0,
            exception=exc,
            context={},
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def flush_loop(self) -> None:
        while True:
            gevent.sleep(FLUSH_S)
            if self.sink is not None:
                self.sink.flush()

    def progress_loop(self) -> None:
        while self.aggregator is not None and not self.finished:
            gevent.sleep(PROGRESS_S)
            if self.role == "master":
                self.watch_workers()
            if self.aggregator is None or self.started is None or self.finished:
                return
            users = self.environment.runner.user_count if self.environment.runner else 0
            line = self.aggregator.progress(time.monotonic() - self.started, users)
            print(PROGRESS_PREFIX + line, flush=True)

    def stop_after(self, seconds: float) -> None:
        gevent.sleep(seconds)
        runner = self.environment.runner
        if runner is None:
            return
        log.info("chatconform: run time reached; no new requests, waiting for those in flight")
        self.stopping = True
        if self.role == "master":
            runner.send_message(STOP_MSG, None)
            expected = max(len(getattr(runner, "clients", {}) or {}), 1)
            self._wait(lambda: len(self.drained_workers) >= expected)
        else:
            self.settler.hurry()
            self._wait(self.drained)
        runner.stop()  # a master waits here until every worker reported stopped
        runner.quit()

    def drained(self) -> bool:
        """No request in flight, and every finished one's work done (its sample recorded)."""
        return self.inflight == 0 and self.settler.pending == 0

    def _wait(self, done: Any) -> None:
        deadline = time.monotonic() + self.drain_s
        while not done() and time.monotonic() < deadline:
            gevent.sleep(0.02)

    def drain_then_report(self) -> None:
        """A worker told to stop: wait for its requests in flight, then tell the master."""
        self.stopping = True
        self.settler.hurry()
        self._wait(self.drained)
        self.settler.flush()
        if self.sink is not None:
            self.sink.flush()
        runner = self.environment.runner
        if runner is not None:
            runner.send_message(DRAINED_MSG, {"worker": self.worker_index})

    def finish(self) -> dict[str, Any] | None:
        """Master/local, at quitting: write load-summary.json; returns it."""
        if self.aggregator is None or self.finished:
            return None
        self.settler.flush()  # what finished streams left to do, before the figures close
        self.finished = True
        agg = self.aggregator
        self.health.stop()
        agg.add_health(self.health.report() | self.check_clock.report() | self.settler.report())
        agg.close()
        settings = self.settings.public()
        settings["workers"] = (
            len(getattr(self.environment.runner, "worker_indexes", {})) or 1
            if self.role == "master"
            else 1
        )
        settings["users"] = getattr(self.environment.parsed_options, "num_users", None)
        if self.role == "master":
            self.watch_workers()
            settings["distributed"] = {
                "expected_workers": self.settings.expect_workers,
                "workers_lost": sorted(self.workers_lost),
                "refused": list(self.refusals),
            }
        settings["target"] = self.target.public()
        result = summary_mod.build(agg.metrics, agg.health, self.settings.gates, settings)
        if self.workers_lost:
            result["verdict"] = "INVALID"
            result["invalid_reasons"].append(
                f"{len(self.workers_lost)} worker(s) lost mid-run: their last samples are missing"
            )
        result["samples"] = agg.samples
        if agg.evidence_count:
            result["violation_evidence"] = agg.evidence_path.name
        path = summary_mod.write(self.settings.report_dir, result)
        for line in summary_mod.lines(result):
            print(SUMMARY_PREFIX + line, flush=True)
        print(SUMMARY_PREFIX + f"summary written to {path}", flush=True)
        self.environment.process_exit_code = summary_mod.exit_code(result)
        return result


CONTEXT: LoadContext | None = None


def context() -> LoadContext:
    if CONTEXT is None:
        raise RuntimeError("chatconform.load.plugin was not initialised by Locust's init event")
    return CONTEXT


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    g = parser.add_argument_group("chatconform")
    g.add_argument(
        "--cc-endpoint",
        choices=("sessions", "completions", "both"),
        default="both",
        help="which endpoint(s) the users load",
    )
    g.add_argument(
        "--cc-rate",
        type=float,
        default=0.0,
        help="open loop: requests per second over all workers (0: closed loop)",
    )
    g.add_argument("--cc-arrival", choices=ARRIVALS, default="constant", help="open-loop arrivals")
    g.add_argument("--cc-seed", type=int, default=1, help="seed of Poisson arrivals")
    g.add_argument("--cc-turns", type=int, default=3, help="streamed messages per session")
    g.add_argument(
        "--cc-max-inflight",
        type=int,
        default=1000,
        help="open loop: in-flight cap per worker (arrivals over it are dropped)",
    )
    g.add_argument("--cc-prompt", default="Hello! Please answer briefly.", help="the user message")
    g.add_argument(
        "--cc-report-dir", default=None, help="where requests.jsonl and load-summary.json go"
    )
    g.add_argument("--cc-timeout", type=float, default=10.0, help="seconds per connect/read")
    g.add_argument("--cc-stream-timeout", type=float, default=30.0, help="seconds per stream")
    g.add_argument("--cc-max-bytes", type=int, default=8 * 1024 * 1024, help="byte cap per stream")
    g.add_argument(
        "--cc-slo",
        default=None,
        help="per-request objectives, e.g. ttft_ms=250,itl_ms=50,tpot_ms=30,e2e_ms=2000",
    )
    g.add_argument(
        "--cc-sweep",
        action="store_true",
        help="a sweep profile (`chatconform load --profile sweep` runs the steps; Locust alone "
        "runs one step at --cc-rate)",
    )
    g.add_argument(
        "--cc-warm-up",
        type=float,
        default=0.0,
        help="seconds: requests sent earlier in the run are warm-up, checked and counted but "
        "left out of latency, throughput and SLO figures",
    )
    g.add_argument(
        "--cc-no-checks",
        action="store_true",
        help="do not judge the streams with the conformance checks (calibration only)",
    )
    g.add_argument(
        "--cc-no-usage",
        action="store_true",
        help="do not ask completions for stream_options.include_usage",
    )
    for option in th.GATES:
        g.add_argument(
            "--cc-" + option.replace("_", "-"),
            type=float,
            default=None,
            help=f"threshold: {option}",
        )


def _select_users(environment: Environment, settings: Settings) -> None:
    """Closed loop: the endpoint's user classes; open loop: only OpenLoopUser."""
    wanted = {
        "sessions": {"SessionUser"},
        "completions": {"CompletionUser"},
        "both": {"SessionUser", "CompletionUser"},
    }[settings.endpoint]
    if settings.rate:
        wanted = {"OpenLoopUser"}
    kept = [u for u in environment.user_classes if u.__name__ in wanted]
    if kept:
        environment.user_classes[:] = kept


@events.init.add_listener
def _init(environment: Environment, **_kw: Any) -> None:
    global CONTEXT
    opts = environment.parsed_options
    if opts is None:  # a library user without Locust's parser: defaults
        return
    settings = Settings.from_options(opts)
    _select_users(environment, settings)
    ctx = CONTEXT = LoadContext(environment, settings)
    runner = environment.runner
    if settings.checks and ctx.role != "master":  # compile the checks' schemas before any stream
        conformance.warm_up()
    if ctx.role in ("master", "local"):
        if getattr(opts, "run_time", None):
            settings.run_time = float(opts.run_time)
            opts.run_time = None  # this plugin stops the run itself (see the module docstring)
        ctx.aggregator = Aggregator(
            settings.report_dir, open_loop=bool(settings.rate), objectives=settings.objectives
        )
    if ctx.role == "master" and runner is not None:
        agg = ctx.aggregator
        assert agg is not None
        runner.register_message(SAMPLES_MSG, lambda msg, **_: agg.add_batch(msg.data))
        runner.register_message(HEALTH_MSG, lambda msg, **_: agg.add_health(msg.data))
        runner.register_message(
            DRAINED_MSG, lambda msg, **_: ctx.drained_workers.add(msg.data["worker"])
        )
        runner.register_message(handshake.HELLO_MSG, lambda msg, **_: ctx.on_hello_from_worker(msg))
        runner.register_message(handshake.REFUSED_MSG, lambda msg, **_: ctx.on_refused(msg))
    if ctx.role == "worker" and runner is not None:
        ctx.sink = WorkerSink(runner.send_message)
        runner.register_message(STOP_MSG, lambda msg, **_: gevent.spawn(ctx.drain_then_report))
        runner.register_message(handshake.HELLO_MSG, lambda msg, **_: ctx.on_hello_from_master(msg))
        gevent.spawn(ctx.say_hello)


@events.test_start.add_listener
def _test_start(environment: Environment, **_kw: Any) -> None:
    ctx = CONTEXT
    if ctx is None or ctx.started is not None:
        return
    ctx.started = time.monotonic()
    ctx.started_ns = time.perf_counter_ns()
    # what start-up built (Locust, the checks' compiled schemas) lives as long as the process:
    # out of the cyclic GC's scans, so that a full collection pauses the users for what the run
    # made, not for all of it (a 75 ms pause at 200 streams before: late reads, merged deltas)
    gc.collect()
    gc.freeze()
    ctx.health.start()
    if ctx.settings.warm_up > 0:  # the client's own health is judged after the warm-up too
        gevent.spawn_later(ctx.settings.warm_up, ctx.health.restart)
    if ctx.role == "worker":
        gevent.spawn(ctx.flush_loop)
        return
    gevent.spawn(ctx.progress_loop)
    if ctx.settings.run_time:
        gevent.spawn(ctx.stop_after, ctx.settings.run_time)


@events.test_stop.add_listener
def _test_stop(environment: Environment, **_kw: Any) -> None:
    ctx = CONTEXT
    if ctx is None or ctx.role != "worker" or ctx.sink is None:
        return
    ctx.settler.flush()
    ctx.sink.flush()
    if not ctx.finished:  # one health report per worker
        ctx.finished = True
        ctx.health.stop()
        report = ctx.health.report() | ctx.check_clock.report() | ctx.settler.report()
        environment.runner.send_message(HEALTH_MSG, report)  # type: ignore[union-attr]


@events.quitting.add_listener
def _quitting(environment: Environment, **_kw: Any) -> None:
    ctx = CONTEXT
    if ctx is None:
        return
    if ctx.role == "worker":
        if ctx.sink is not None:
            line = f"worker {ctx.worker_index} sent {ctx.sink.sent} samples"
            print(SUMMARY_PREFIX + line, flush=True)
        return
    try:
        ctx.finish()
    except Exception as exc:  # report, never hang Locust's shutdown
        print(f"chatconform: could not write the load summary: {exc}", file=sys.stderr, flush=True)
        environment.process_exit_code = 2
