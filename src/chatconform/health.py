"""What the run has learned about the target's health, shared by every process of the run
(pytest-xdist workers): the streams that did not end and the one short window they opened, and the
breaker's counts of exchanges in a row that failed.

A small JSON file in the run's shared directory, updated under an exclusive flock(2) and read under
a shared one; until the first exchange is recorded a read is one stat call. Every process on it
learns together: without it each worker would pay the full stream deadline once, and trip its own
breaker after its own run of timeouts. The window's close is wall-clock time (`time.time()`): every
process of the run is on this host.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chatconform import lockedfile


@dataclass
class Health:
    strikes: list[str] = field(default_factory=list)  # what each stream that did not end did
    window_end: float | None = None  # time.time(): the shared window closes (None: not opened)
    failures: int = 0  # exchanges in a row that timed out or outgrew the byte cap
    unusable: int = 0  # answers in a row that were cut short (timed out, over the cap, abandoned)
    struck: list[str] = field(default_factory=list)  # termination rules a strike showed broken

    @classmethod
    def parse(cls, text: str) -> Health:
        data: Any = {}
        with contextlib.suppress(ValueError):
            data = json.loads(text) if text.strip() else {}
        if not isinstance(data, dict):
            return cls()
        end = data.get("window_end")
        return cls(
            strikes=[s for s in data.get("strikes", []) if isinstance(s, str)],
            window_end=float(end) if isinstance(end, int | float) else None,
            failures=_count(data.get("failures")),
            unusable=_count(data.get("unusable")),
            struck=[s for s in data.get("struck", []) if isinstance(s, str)],
        )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class SharedHealth:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Health:
        try:
            return Health.parse(lockedfile.read_shared(self.path))
        except FileNotFoundError:
            return Health()

    def update(self, change: Callable[[Health], bool]) -> Health:
        """Apply `change` to the run's health under the lock; written back when it returns True.
        Returns the health as it now is."""
        with lockedfile.exclusive(self.path) as held:
            health = Health.parse(held.text)
            if change(health):
                held.write(json.dumps(asdict(health)))
        return health
