"""Requests that each wait seconds on the target's agent, sent at the same time.

A test that needs two independent replies (a plain and a streamed completion, say) waits for the
sum of two agent replies when it sends them one after another, and only for the longer one when it
sends them at once. `at_once` runs such calls in threads and returns their results in the order
given. Under an agent-call cap without room for all of them it runs them one after another, so
that the cap refuses the later ones, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from chatconform.budget import Budget

T = TypeVar("T")


def at_once(budget: Budget | None, *calls: Callable[[], T]) -> list[T]:
    """The results of `calls`, run at the same time when the cap (if any) has room for all."""
    ledger = budget.agent_calls if budget is not None else None
    left = ledger.left() if ledger is not None else None
    if len(calls) < 2 or (left is not None and left < len(calls)):
        return [call() for call in calls]
    with ThreadPoolExecutor(len(calls), thread_name_prefix="cc-at-once") as pool:
        futures = [pool.submit(call) for call in calls]
        return [f.result() for f in futures]
