"""Run-wide bounds: a deadline for the whole run, a breaker for a target that stopped answering, and
the cap on agent calls the user chose (`--max-agent-calls`, kept by chatconform.agentcalls), and what
the run has learned about the target's streams.

Per-request bounds (connect/read timeout, per-exchange deadline, byte cap) live in the client; these
keep the sum bounded too: a target that hangs every request costs a few timeouts, not one per test,
a run against a real agent costs a known number of replies, and a target whose streams never end (or
stall, or drip) costs one full stream deadline, not one per stream test. After `STREAM_STRIKES`
streams (or exchanges) that did not end in time, later exchanges share one short window
(`ABANDON_WINDOW_S`), each at most `DEGRADED_EXCHANGE_S`; what they could not finish in it is
abandoned, and the findings on an abandoned exchange are ERROR (the run did not give it the full
deadline), never FAIL. Under pytest-xdist the workers learn this together (chatconform.health: a file
in the run's shared directory): the run's first strike, in any worker, opens the one window for all.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from chatconform.agentcalls import AgentCalls, invokes_agent
from chatconform.checks.unended import termination_rule
from chatconform.health import Health, SharedHealth
from chatconform.record import Exchange
from chatconform.target import Limits

STREAM_STRIKES = 1  # streams that did not end in time before later ones are abandoned
ABANDON_WINDOW_S = 10.0  # one short window that all later long exchanges share
DEGRADED_EXCHANGE_S = 5.0  # and at most this much each
UNUSABLE_IN_A_ROW = 10  # answers in a row that were all cut short: the target gives nothing usable


class Budget:
    def __init__(
        self, limits: Limits, agent_calls: AgentCalls | None = None, health: Path | None = None
    ) -> None:
        """`health`: the file where the processes of one run share what they learn of the
        target (chatconform.health); without it this process learns alone."""
        self.limits = limits
        self.deadline = time.monotonic() + limits.run_timeout
        self.consecutive_failures = 0
        self.agent_calls = agent_calls
        if agent_calls is not None:
            agent_calls.deadline = self.deadline
        self.strikes: list[str] = []  # what each stream that did not end did
        self.struck: set[str] = set()  # the termination rules (SSE-5, OAI-4) those streams broke
        self.window_end_ns: int | None = None  # perf_counter_ns: the shared window closes
        self.abandoned = 0
        self.unusable_in_a_row = (
            0  # timed out, over the cap or abandoned, since the last usable answer
        )
        self._lock = threading.Lock()
        self._shared = SharedHealth(health) if health is not None else None

    def refusal(self) -> str | None:
        """Why the next request must not be sent (None: send it)."""
        self._learn()  # the breaker counts the whole run's exchanges
        if time.monotonic() > self.deadline:
            return f"not sent: the run exceeded its {self.limits.run_timeout:g} s budget"
        n = self.limits.max_consecutive_failures
        if n and self.consecutive_failures >= n:
            return (
                f"not sent: the target stopped answering usably ({n} consecutive exchanges "
                "timed out or outgrew the byte cap)"
            )
        if self.unusable_in_a_row >= UNUSABLE_IN_A_ROW:
            return (
                f"not sent: the target's last {self.unusable_in_a_row} answers were all cut short "
                f"({self.health_reason})"
            )
        return None

    def admit(self, ex: Exchange) -> str | None:
        """Why `ex` must not be sent (None: send it). A refusal by the agent-call cap, a limit the
        user chose, is marked on the exchange (`ex.limit`): the rules it would have exercised are
        SKIP naming that limit, where a refusal by the deadline or the breaker is an ERROR."""
        refusal = self.refusal()
        if refusal is None and self.agent_calls is not None and invokes_agent(ex.method, ex.url):
            refusal = self.agent_calls.claim()  # may wait (a late suite's turn)
            ex.t_start_ns = time.perf_counter_ns()  # the exchange starts when it may be sent
            if refusal is not None:
                ex.limit = self.agent_calls.limit_text
            else:
                ex.agent_claim = True
        return refusal

    # -- what the run learned (chatconform.health: shared by the run's processes) --------------
    def _take(self, h: Health) -> None:
        """Take the run's health as this process's view (under _lock)."""
        self.consecutive_failures, self.unusable_in_a_row = h.failures, h.unusable
        self.strikes = list(h.strikes)
        self.struck = set(h.struck)
        if h.window_end is not None and self.window_end_ns is None:
            self.window_end_ns = time.perf_counter_ns() + int((h.window_end - time.time()) * 1e9)

    def _learn(self) -> None:
        """What the other processes of the run found since."""
        if self._shared is not None:
            h = self._shared.read()
            with self._lock:
                self._take(h)

    @property
    def degraded(self) -> bool:
        if self.window_end_ns is None:  # once open, the window stays
            self._learn()
        return self.window_end_ns is not None

    @property
    def health_reason(self) -> str:
        self._learn()  # the run's strikes, not only this process's
        what = "; ".join(dict.fromkeys(self.strikes))
        n = len(self.strikes)
        return f"{n} earlier stream{'s' if n > 1 else ''} did not end ({what})"

    def unproven(self, ex: Exchange) -> bool:
        """A request for a stream of an endpoint whose streams no strike of the run has shown not
        to end yet (its termination rule, SSE-5 or OAI-4, is not judged yet): it gets the full
        deadline even once the run is degraded, so that both rules are judged (FAIL) whichever
        endpoint's stream happened to strike first. At most one deadline more per rule."""
        rule = termination_rule(ex)
        if rule is None or not self.degraded:
            return False
        self._learn()
        return rule not in self.struck

    def exchange_seconds(self) -> float:
        """The deadline of a new exchange: the full one, or a short one once streams are known not
        to end (a correct answer takes milliseconds; only a hostile one is cut)."""
        full = self.limits.stream_timeout
        return min(full, DEGRADED_EXCHANGE_S) if self.degraded else full

    def stream_cutoff_ns(self, headers_ns: int) -> int | None:
        """When a stream whose headers came at `headers_ns` must end: the shared window's close
        (at least its first read); None when streams are not known to hang."""
        if not self.degraded or self.window_end_ns is None:
            return None
        return max(self.window_end_ns, headers_ns)

    def stream_refusal(self) -> str | None:
        """Why a request that asks for a stream is not sent: the shared window is spent."""
        if not self.degraded or self.window_end_ns is None:
            return None
        if time.perf_counter_ns() < self.window_end_ns:
            return None
        return f"not sent: stream tests abandoned: {self.health_reason}"

    def streams_not_judged(self) -> str | None:
        """Why a test that talks to the target outside the client (an SDK) is not run, or None:
        the run's budget refuses requests, or the target's streams are known not to end."""
        refusal = self.refusal()
        if refusal is not None:
            return refusal
        if not self.degraded:
            return None
        return f"not run: the target's streams do not end ({self.health_reason})"

    def abandon_reason(self, seconds: float) -> str:
        return (
            f"abandoned after {seconds:.1f} s: {self.health_reason}; later streams share one "
            f"{ABANDON_WINDOW_S:g} s window"
        )

    def record(self, ex: Exchange) -> None:
        if ex.agent_claim and self.agent_calls is not None:
            self.agent_calls.settle(ex)
        long_body = (
            ex.timed_out
            and ex.elapsed_ms is not None
            and (ex.elapsed_ms >= self.limits.stream_timeout * 1000)
        )
        strike = None
        if ex.abandoned is None and ((ex.stream is not None and ex.timed_out) or long_body):
            strike = _strike(ex, self.limits)
        with self._lock:
            if ex.abandoned is not None:
                self.abandoned += 1
            if self._shared is not None:
                self._take(self._shared.update(lambda h: _count(h, ex, strike)))
                return
            opened = time.time() if self.window_end_ns is not None else None
            h = Health(self.strikes, opened, self.consecutive_failures, self.unusable_in_a_row)
            h.struck = sorted(self.struck)
            _count(h, ex, strike)
            self._take(h)


def _count(h: Health, ex: Exchange, strike: str | None) -> bool:
    """Count one exchange into the run's health; True when anything changed."""
    before = (h.failures, h.unusable, len(h.strikes), h.window_end, len(h.struck))
    usable = ex.status is not None and not (ex.timed_out or ex.over_cap or ex.abandoned)
    h.unusable = 0 if usable else h.unusable + 1
    if ex.abandoned is not None:
        # cut short by us: the breaker counts it only when not even the headers came
        if ex.status is None:
            h.failures += 1
    elif ex.timed_out or ex.over_cap:
        h.failures += 1
    elif ex.status is not None:
        h.failures = 0
    if strike is not None:
        h.strikes.append(strike)
        rule = termination_rule(ex)
        if rule is not None and rule not in h.struck:
            h.struck.append(rule)
        if len(h.strikes) >= STREAM_STRIKES and h.window_end is None:
            h.window_end = time.time() + ABANDON_WINDOW_S
    return (h.failures, h.unusable, len(h.strikes), h.window_end, len(h.struck)) != before


def _strike(ex: Exchange, limits: Limits) -> str:
    if ex.elapsed_ms is not None and ex.elapsed_ms >= limits.stream_timeout * 1000:
        return f"outlived {limits.stream_timeout:g} s"
    return f"stalled {limits.timeout:g} s"
