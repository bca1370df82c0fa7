"""Wake-ups to the tens of microseconds for ``--calibration``: one Linux timerfd per event loop.

Event-loop timers (asyncio's and uvloop's alike) wait in ``epoll_wait``, whose timeout is whole
milliseconds: a reply scheduled every 20 ms comes out as gaps of 19.2 or 20.3 ms, a server jitter
larger than the client error a calibration run is meant to show. Here the waiters sit in a heap
and one ``timerfd`` (``CLOCK_MONOTONIC``, absolute, nanoseconds: the clock of
``time.monotonic()``) is armed for the earliest; the loop watches it like any socket, so its
readiness wakes the loop when due. The process's timer slack is cut to 1 µs (``prctl``), since the
kernel otherwise may defer a wake-up by 50 µs.

Linux only, through ctypes; elsewhere (or when the calls fail) :func:`waker` gives None and the
caller falls back to the loop's own timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import itertools
import logging
import os
import sys
import weakref
from collections.abc import Callable
from time import monotonic

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = 0o2000000
TFD_TIMER_ABSTIME = 1
PR_SET_TIMERSLACK = 29

log = logging.getLogger(__name__)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                         ctypes.c_void_p]  # fmt: skip
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


class Waker:
    """Waiters woken at their due times (``time.monotonic()`` seconds) through one timerfd."""

    def __init__(self, loop: asyncio.AbstractEventLoop, libc: ctypes.CDLL) -> None:
        fd = libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self.fd = fd
        self.loop = loop
        self._libc = libc
        # (due, order, a sleeper's future or None, a callback or None)
        self._heap: list[tuple[float, int, asyncio.Future[None] | None, Callable[[], None] | None]]
        self._heap = []
        self._seq = itertools.count()
        self._armed: float | None = None
        self._spec = _Itimerspec()
        loop.add_reader(fd, self._fire)
        weakref.finalize(self, os.close, fd)

    def _arm(self, due: float) -> None:
        sec = int(due)
        spec = self._spec
        spec.it_value.tv_sec = sec
        spec.it_value.tv_nsec = max(int((due - sec) * 1e9), 1)  # 0/0 would disarm it
        if self._libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None):
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")
        self._armed = due

    def _fire(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            os.read(self.fd, 8)
        self._armed = -1.0  # firing: what the callbacks schedule is armed once, below
        heap = self._heap
        now = monotonic()
        while heap and heap[0][0] <= now:  # what a callback schedules at or before now, too
            _, _, fut, callback = heapq.heappop(heap)
            if fut is not None:
                if not fut.done():
                    fut.set_result(None)
                continue
            try:
                callback()  # type: ignore[misc]
            except Exception:  # one caller's bug must not stop every other wake-up
                log.exception("a timed callback failed")
        while heap and heap[0][2] is not None and heap[0][2].done():  # cancelled sleepers
            heapq.heappop(heap)
        self._armed = None
        if heap:
            self._arm(heap[0][0])

    def call_at(self, due: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` from the loop at ``due`` (at once, if that has passed), in the
        timerfd's own callback: no task or future per wake-up."""
        self._push(due, None, callback)

    async def sleep_until(self, due: float) -> None:
        if due <= monotonic():
            return
        fut: asyncio.Future[None] = self.loop.create_future()
        self._push(due, fut, None)
        await fut

    def _push(
        self, due: float, fut: asyncio.Future[None] | None, callback: Callable[[], None] | None
    ) -> None:
        """Schedule a sleeper's wake-up or a callback at ``due``; arm the timer if it is the
        earliest (while firing, ``_fire`` arms once for all it scheduled)."""
        heapq.heappush(self._heap, (due, next(self._seq), fut, callback))
        if self._armed is None or due < self._armed:
            self._arm(due)


_wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Waker | None] = (
    weakref.WeakKeyDictionary()
)


def waker() -> Waker | None:
    """The running loop's waker, made on first use; None where timerfd is not available."""
    loop = asyncio.get_running_loop()
    if loop in _wakers:
        return _wakers[loop]
    w: Waker | None = None
    if _LIBC is not None:
        try:
            w = Waker(loop, _LIBC)
            _LIBC.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)  # this process's wake-ups: 1 ns slack
        except (OSError, NotImplementedError, RuntimeError):
            w = None
    _wakers[loop] = w
    return w
