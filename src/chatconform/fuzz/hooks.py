"""Schemathesis hooks for `schemathesis run` (named by the top-level `schemathesis.toml`).

- registers the SSE-aware check `chatconform_event_stream` (termination SSE-5 / OAI-4, frame shape
  SSE-3, order SSE-7, `[DONE]` last), on chatconform's own parser;
- keeps a `negative_data_rejection` failure only when the request, as sent, breaks the contract's
  rejection list (the spec's `x-must-reject`, `rejection.py`): elsewhere a server may be lenient;
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

from chatconform.fuzz import rejection
from chatconform.fuzz.contract import substitute_agent
from chatconform.fuzz.streams import chatconform_event_stream, exchange_from_response

schemathesis.check(chatconform_event_stream)


@schemathesis.hook
def before_call(context: HookContext, case: Case, kwargs: dict[str, Any]) -> None:
    operation_id = str(case.operation.definition.raw.get("operationId", ""))
    if substitute_agent(operation_id, case.body, os.environ.get("FLOWYTE_AGENT_ID")):
        case.body = case.body


@schemathesis.hook
def filter_failure(context: HookContext, failure: Any, case: Case, response: Any) -> bool:
    """Keep a negative-data failure only for a request that breaks the rejection list."""
    if "negative_data_rejection" not in getattr(failure, "checks", ()):
        return True
    if response is None or not 200 <= response.status_code < 300:
        return True  # a wrong refusal (e.g. 422) or a 5xx is still a failure
    operation_id = str(case.operation.definition.raw.get("operationId", ""))
    return bool(rejection.broken(operation_id, exchange_from_response(response)))
