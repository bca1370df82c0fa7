"""Schemathesis hooks for `schemathesis run` (named by the top-level `schemathesis.toml`).

- registers the SSE-aware check `chatconform_event_stream` (termination SSE-5 / OAI-4, frame shape
  SSE-3, order SSE-7, `[DONE]` last), on chatconform's own parser;
- puts the target's agent id (`FLOWYTE_AGENT_ID`, when set) into every generated `agentId` of
  createSession and `model` of /chat/completions, in every phase, so that sequences reach real
  sessions (Schemathesis's own `parameters` overrides leave the coverage phase out).

Importing this module registers them globally: the fuzz suite does not import it.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from schemathesis import Case, HookContext

from chatconform.fuzz.contract import substitute_agent, tolerated_negative
from chatconform.fuzz.streams import chatconform_event_stream

schemathesis.check(chatconform_event_stream)


@schemathesis.hook
def before_call(context: HookContext, case: Case, kwargs: dict[str, Any]) -> None:
    operation_id = str(case.operation.definition.raw.get("operationId", ""))
    if substitute_agent(operation_id, case.body, os.environ.get("FLOWYTE_AGENT_ID")):
        case.body = case.body


@schemathesis.hook
def filter_failure(context: HookContext, failure: Any, case: Case, response: Any) -> bool:
    """Drop negative-data failures that OAI-1's leniency allows (see contract.tolerated_negative)."""
    if "negative_data_rejection" not in getattr(failure, "checks", ()):
        return True
    operation_id = str(case.operation.definition.raw.get("operationId", ""))
    return not tolerated_negative(operation_id, case.body)
