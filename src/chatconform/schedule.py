"""The order in which pytest-xdist hands the suites' tests to its workers (`--concurrency N`).

xdist's loadscope scheduling hands out one work unit at a time to each worker as it frees up, in
collection order (the plugin's: timing-sensitive tests first, the longest next, the late suites
last). Each test is its own unit, but the late suites' tests (the fuzz suite) form a single one, so
that a single worker runs them in turn with one fuzzer (a fuzzer costs seconds to build).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

LATE_UNIT = "chatconform-late"


def family_of(nodeid: str) -> str:
    """A test's suite from its node id: its file's name (suites/test_<family>.py)."""
    return Path(nodeid.split("::", 1)[0]).stem.removeprefix("test_")


def late_group_scheduler(config: Any, log: Any, late: Iterable[str]) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    families = frozenset(late)

    class LateGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return LATE_UNIT if family_of(nodeid) in families else nodeid

    return LateGroupScheduling(config, log)
