"""Tests that share the target, and tests that must have it to themselves.

With `--concurrency N` the suites run in N pytest-xdist workers. Most tests only wait on the target and
can overlap; a timing-sensitive test (SSE-8's flush timing, MSG-6's concurrent posts, MSG-7's dropped
stream) must run with nothing else in flight. The gate is a readers-writer lock over two files shared
by every worker, with flock(2): an ordinary test holds the `shared` lock while it runs, a timing-sensitive
one the `exclusive` lock; a turnstile makes a waiting exclusive test block new shared holders, so it is
not starved by a stream of short tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class Gate:
    def __init__(self, directory: Path) -> None:
        self.turnstile = directory / "turnstile.lock"
        self.rw = directory / "rw.lock"

    @staticmethod
    def _open(path: Path) -> int:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def shared(self) -> contextlib.AbstractContextManager[None]:
        return self._hold(fcntl.LOCK_SH)

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        return self._hold(fcntl.LOCK_EX)

    @contextlib.contextmanager
    def _hold(self, mode: int) -> Iterator[None]:
        """Through the turnstile, then `rw` in `mode`: a reader lets the next one through the
        turnstile at once, a writer keeps it shut until it is done (no reader overtakes it)."""
        turn, rw = self._open(self.turnstile), self._open(self.rw)
        try:
            fcntl.flock(turn, fcntl.LOCK_EX)
            fcntl.flock(rw, mode)
            if mode == fcntl.LOCK_SH:
                fcntl.flock(turn, fcntl.LOCK_UN)
            yield
        finally:
            os.close(rw)
            os.close(turn)
