"""The fuzz suite's cases in flight: up to N at once, judged in the order they were generated.

Against a target whose agent takes seconds per reply, sending the fuzz cases one after another costs
one reply per agent-invoking case. `Window` sends up to `workers` of them at once from a bounded
thread pool (each post on a session of its own, see `Fuzzer.submit`), and hands each response back to its checks in the order the cases were generated, so
that what is recorded (findings, evidence, the digest of what was sent) does not depend on which
reply came first. With one worker a case is sent and checked at once, as before.

It also keeps the agent-call cap (`--max-agent-calls`) deterministic: a case that may invoke the
agent is sent at once only while calls are left even if every one in flight is accepted; otherwise
it waits for those in flight to settle (a rejected one gives its call back), and it is held back only
when none is in flight and none is left, exactly where a one-at-a-time run would stop. A phase of the
fuzz suite may be given a share of what is left (`plan`), so that the later ones get some too.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from chatconform.agentcalls import AgentCalls
from chatconform.record import Exchange

#: How long one wait for a case in flight lasts before the loop looks again (each exchange is
#: bounded by the client's own deadlines; this only bounds a single wait).
POLL_S = 1.0

Finish = Callable[[Exchange | None], None]


class Window:
    def __init__(self, workers: int, ledger: AgentCalls | None) -> None:
        self.workers = max(1, workers)
        self.ledger = ledger
        self._pool = (
            ThreadPoolExecutor(self.workers, thread_name_prefix="cc-fuzz")
            if self.workers > 1
            else None
        )
        self._queue: deque[tuple[Future[Exchange | None], Finish]] = deque()
        self._cv = threading.Condition()
        self._agent_pending = 0  # agent-invoking cases submitted and not yet answered
        self._share: Callable[[int], int] | None = None
        self.ceiling: int | None = None  # the run's agent calls at which this phase stops
        self._planned = False

    @property
    def concurrent(self) -> bool:
        return self._pool is not None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # -- the agent-call cap ---------------------------------------------------------------------
    def plan(self, share: Callable[[int], int] | None) -> None:
        """The next phase may spend `share(left)` of the agent calls left when it first needs one
        (None: all of them). Decided then, not now: a late suite waits for the scenario suites."""
        self.drain()
        self._share = share
        self.ceiling = None
        self._planned = False

    def room(self) -> bool:
        """Whether one more agent-invoking case may be sent now; False only when none is in
        flight and none is left for this phase (the cap, or its share of it, is spent)."""
        ledger = self.ledger
        if ledger is None or ledger.cap is None:
            return True
        if not self._planned:
            ledger.ready()
            self.drain()
            spent = ledger.spent()
            left = max(0, ledger.cap - spent)
            allowed = left if self._share is None else max(0, min(left, self._share(left)))
            self.ceiling = spent + allowed
            self._planned = True
        assert self.ceiling is not None
        while True:
            with self._cv:
                pending = self._agent_pending
            if self.ceiling - ledger.spent() - pending > 0:
                return True
            if pending == 0:
                return False
            with self._cv:  # one of those in flight may be rejected and give its call back
                self._cv.wait_for(lambda n=pending: self._agent_pending < n, timeout=POLL_S)

    # -- sending --------------------------------------------------------------------------------
    def submit(self, send: Callable[[], Exchange | None], finish: Finish, agent: bool) -> None:
        """Send one case (`send`: None when it could not be put on the wire) and, in generation
        order, hand its exchange to `finish`. At most `workers` cases are in flight; only those
        that may invoke the agent (`agent`) overlap: the others answer in milliseconds, and reads
        sent at once could outrun a target's rate limit."""
        if self._pool is None or not agent:
            self.drain()
            finish(send())
            return
        if agent:
            with self._cv:
                self._agent_pending += 1

        def run() -> Exchange | None:
            try:
                return send()
            finally:
                if agent:
                    with self._cv:
                        self._agent_pending -= 1
                        self._cv.notify_all()

        self._queue.append((self._pool.submit(run), finish))
        self._finish_ready()
        while len(running := [f for f, _ in self._queue if not f.done()]) >= self.workers:
            wait(running, timeout=POLL_S, return_when=FIRST_COMPLETED)
            self._finish_ready()

    def _finish_ready(self) -> None:
        while self._queue and self._queue[0][0].done():
            future, finish = self._queue.popleft()
            finish(future.result())

    def drain(self) -> None:
        """Wait for every case in flight and finish them, in order."""
        while self._queue:
            future, finish = self._queue.popleft()
            while not future.done():
                wait([future], timeout=POLL_S)
            finish(future.result())
