"""Run-wide bounds: a deadline for the whole run, and a breaker for a target that stopped answering.

Per-request bounds (connect/read timeout, per-exchange deadline, byte cap) live in the client; these
two keep the sum bounded too: a target that hangs every request costs a few timeouts, not one per test.
"""

from __future__ import annotations

import threading
import time

from chatconform.record import Exchange
from chatconform.target import Limits


class Budget:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.run_timeout
        self.consecutive_failures = 0
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

    def record(self, ex: Exchange) -> None:
        with self._lock:
            if ex.timed_out or ex.over_cap:
                self.consecutive_failures += 1
            elif ex.status is not None:
                self.consecutive_failures = 0
