"""What follows a stream (its timeline, its checks, its sample), run when the reads can wait.

A load client's figures come from when its reads return: at 200 streams one process reads
thousands of deltas a second, and every read that waits behind other work may come back holding
two deltas, which then share one arrival time (the kernel stamps a read with its last segment's).
The work after a stream (parsing its events, the conformance checks, recording the sample: about
a quarter of the client's CPU at 200 streams) needs no particular moment, so it waits here, one
stream's worth at a time, for the event loop to be idle (gevent's idle watcher: no read or timer
pending), and the reads of the streams still in flight go first.

Nothing is lost or judged differently: every stream's work runs, in order, exactly as it would
have inline; only when. The queue is bounded (``bound``: past it, the caller does the work
itself, so a client that is never idle slows down instead of growing), and once the run stops
(``urgent``) the queue drains without waiting for idle moments. ``pending`` counts the streams
whose work has not finished, so the end of a run waits for them as for requests in flight.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import gevent
import gevent.event

log = logging.getLogger(__name__)


class Settler:
    """Runs submitted callables one at a time, each at an idle moment of the event loop."""

    def __init__(self, bound: int) -> None:
        self.bound = max(bound, 1)
        self.urgent = False  # the run is stopping: drain without waiting for idle moments
        self.pending = 0  # submitted and not yet finished (queued, or running)
        self.max_backlog = 0  # the most finished streams ever waiting here at once
        self.overflowed = 0  # streams whose work ran inline: the queue was full (never idle)
        self._queue: deque[Callable[[], None]] = deque()
        self._wake = gevent.event.Event()
        self._runner: gevent.Greenlet | None = None

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work`` later at an idle moment, or now if the queue is full or the run ends."""
        if self.urgent or len(self._queue) >= self.bound:
            self.overflowed += not self.urgent
            self._run_one(work)
            return
        self.pending += 1
        self._queue.append(work)
        self.max_backlog = max(self.max_backlog, len(self._queue))
        self._wake.set()
        if self._runner is None or self._runner.dead:
            self._runner = gevent.spawn(self._drain)

    def report(self) -> dict[str, int]:
        """For the client's health: how far the after-work fell behind the reads."""
        return {"settle_backlog_max": self.max_backlog, "settled_inline": self.overflowed}

    def hurry(self) -> None:
        """The run is stopping: what is queued runs without waiting for idle moments."""
        self.urgent = True
        self._wake.set()

    def flush(self) -> None:
        """Run what is queued, here and now (the run's end: nothing may be left behind)."""
        self.urgent = True
        while self._queue:
            self._run_next()

    def _run_next(self) -> None:
        try:
            self._run_one(self._queue.popleft())
        finally:
            self.pending -= 1

    def _run_one(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception:  # a bug in one stream's bookkeeping must not stop the others'
            log.exception("post-stream work failed")

    def _drain(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                self._wake.clear()
                self._wake.wait()
                continue
            if not self.urgent:
                gevent.idle()  # until no read or timer is pending
            if queue:  # a flush() may have emptied it meanwhile
                self._run_next()
