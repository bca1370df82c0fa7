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
