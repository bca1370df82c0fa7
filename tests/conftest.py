"""Fixtures shared by the self-tests: expensive things made once and shared where isolation allows.

`shared_reference`: one plain reference server (no fault, no variation) for the whole test session
of a worker, for tests that only need *a* correct target and do not care what other tests did to it
(sessions they created, keys they tried). Tests that need a fault, a variation, a fresh database or
timing of their own still start their own (`harness.reference(...)`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatconform.embedded import EmbeddedServer

from harness import reference


@pytest.fixture(scope="session")
def shared_reference() -> Iterator[EmbeddedServer]:
    with reference() as server:
        yield server


# Scheduling on few cores (CI: `pytest -n 2`). The suite's wall time is set by its long end-to-end
# tests (two default runs, a strict run, each fault's run, the fuzz faults, the README walk-through,
# hostile targets, load runs): started last, one of them holds a worker alone while the other
# idles. So they are collected first, longest single test first (as measured with
# `pytest -n 2 --durations=40` on 2 cores, issue 14), and xdist's default `load` distribution is
# switched to `worksteal`: an idle worker takes queued tests from a busy one instead of waiting, and
# each worker starts from a contiguous half of the collection, which keeps a module's tests (and its
# module-scoped fixture) together more than `load` does. No test is dropped or changed, only the order.
SLOW_FIRST: tuple[str, ...] = (
    "test_run_verdicts.py",
    "test_readme.py::test_readme_walk_through_verbatim",
    "test_fuzz.py",
    "test_conformance.py",
    "test_secrets.py",
    "test_hostile.py",
    "test_examples.py",
    "test_agent_budget.py",
    "test_confirm.py",
    "test_load_profiles.py",
    "test_load_distributed.py",
    "test_load_sweep.py",
    "test_load_conformance.py",
    "test_report.py",
    "test_sdk.py",
    "test_load_cli.py",
    "test_reference_stress.py",
    "test_wheel.py",
    "test_cli.py",
    "test_load_stream.py",
    "test_sse_differential.py",
    "test_spec.py",
)


def _rank(item: pytest.Item) -> int:
    nodeid = item.nodeid.removeprefix("tests/")
    for i, prefix in enumerate(SLOW_FIRST):
        if nodeid.startswith(prefix):
            return i
    return len(SLOW_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: the order within a group stays as collected


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "dist", None) == "load" and getattr(config.option, "tx", None):
        config.option.dist = "worksteal"
