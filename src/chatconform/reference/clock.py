"""Time helpers: RFC 3339 timestamps, epoch milliseconds, and sleeping to an absolute deadline."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime


def now_iso() -> str:
    """The current time as RFC 3339 in UTC with milliseconds and a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms() -> int:
    return int(time.time() * 1000)


async def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` on the loop clock (absolute, so delays never accumulate)."""
    loop = asyncio.get_running_loop()
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


def delta_deadline(t0: float, ttft_ms: int, itl_ms: int, index: int) -> float:
    """When delta ``index`` (0-based) is due: receipt + ttft + index * itl."""
    return t0 + (ttft_ms + index * itl_ms) / 1000.0
