"""Suite fixtures: the plugin, the agent to talk to, and a fresh session per test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chatconform.checks.common import data_of, finding
from chatconform.checks.sessions import created
from chatconform.client import Client
from chatconform.plugin import Expect, need
from chatconform.target import Target


@pytest.fixture
def agent_id(target: Target) -> str:
    return need(target.agent_id, "--agent-id")


@pytest.fixture
def make_session(api: Client, expect: Expect, agent_id: str) -> Callable[..., dict[str, Any]]:
    """Create a session (checked against SES-1/SES-4) and return its Session object."""

    def make(**kw: Any) -> dict[str, Any]:
        ex = api.create_session(agent_id, **kw)
        found = created(ex, agent_id)
        data = data_of(ex)
        usable = isinstance(data, dict) and isinstance(data.get("id"), str)
        if not usable and not found:
            found = [finding("SES-1", "a Session with an id", ex.describe(), ex)]
        expect.check(found, fatal=not usable)
        return data

    return make


@pytest.fixture
def session(make_session: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return make_session()
