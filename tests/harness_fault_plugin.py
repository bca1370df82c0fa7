"""A pytest plugin for one self-test: it breaks the harness (not the target) inside one suite test.

Loaded with `PYTEST_ADDOPTS="-p harness_fault_plugin"` (tests/ on PYTHONPATH), it raises in the call
of `test_create_then_get`, as a bug of chatconform's own would. The run must say ERROR for that
test's rules and exit 3, never FAIL the target.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    if item.name == "test_create_then_get":
        raise RuntimeError("injected harness fault")
