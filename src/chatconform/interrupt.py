"""Ctrl-C, kept until the run stops.

Python turns SIGINT into a KeyboardInterrupt at one point of the main thread; a library that catches
it there (Hypothesis reports what an explicit example raised, BaseException included) can swallow
it, and the run would go on to the end, exit 0. So `chatconform run` also records the interrupt
here, and every request (chatconform.client) and every fuzz case raises it again until the suites
stop: the user's Ctrl-C ends the run within one exchange, wherever it landed.
"""

from __future__ import annotations

import time

_at: list[float] = []  # monotonic time of each SIGINT received during the suites


def record() -> None:
    _at.append(time.monotonic())


def requested() -> bool:
    return bool(_at)


def check() -> None:
    """Raise KeyboardInterrupt once the user has interrupted the run."""
    if _at:
        raise KeyboardInterrupt("interrupted (Ctrl-C)")
