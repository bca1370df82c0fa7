"""Run-wide bounds: a deadline for the whole run, a breaker for a target that stopped answering, and
the cap on agent calls the user chose (`--max-agent-calls`, kept by chatconform.agentcalls).

Per-request bounds (connect/read timeout, per-exchange deadline, byte cap) live in the client; these
keep the sum bounded too: a target that hangs every request costs a few timeouts, not one per test,
and a run against a real agent costs a known number of replies.
"""

from __future__ import annotations

import threading
import time

from chatconform.agentcalls import AgentCalls, invokes_agent
from chatconform.record import Exchange
from chatconform.target import Limits


class Budget:
    def __init__(self, limits: Limits, agent_calls: AgentCalls | None = None) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.run_timeout
        self.consecutive_failures = 0
        self.agent_calls = agent_calls
        if agent_calls is not None:
            agent_calls.deadline = self.deadline
        self._lock = threading.Lock()

    def refusal(self) -> str | None:
        """Why the next request must not be sent (None: send it)."""
        if time.monotonic() > self.deadline:
            return f"not sent: the run exceeded its {self.limits.run_timeout:g} s budget"
        n = self.limits.max_consecutive_failures
        if n and self.consecutive_failures >= n:
            return (
                f"not sent: the target stopped answering usably ({n} consecutive exchanges "
                "timed out or outgrew the byte cap)"
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

    def record(self, ex: Exchange) -> None:
        if ex.agent_claim and self.agent_calls is not None:
            self.agent_calls.settle(ex)
        with self._lock:
            if ex.timed_out or ex.over_cap:
                self.consecutive_failures += 1
            elif ex.status is not None:
                self.consecutive_failures = 0
