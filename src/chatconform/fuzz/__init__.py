"""Schema-driven fuzzing: Schemathesis over specs/chat-api.yaml, stateless and stateful.

`Fuzzer` (runner.py) runs the stateless phases, `Stateful` (stateful.py) the link-driven state
machine, `streams.py` holds the SSE-aware checks, `contract.py` the contract's Schemathesis settings
and the failure -> rule mapping, and `hooks.py` the same wiring for `schemathesis run` (loaded by
the top-level `schemathesis.toml`). The `fuzz` suite (suites/test_fuzz.py) drives them.
"""

from __future__ import annotations

from chatconform.fuzz.runner import DEFAULT_MAX_EXAMPLES, Fuzzer, FuzzSettings, new_seed
from chatconform.fuzz.stateful import Stateful

__all__ = ["DEFAULT_MAX_EXAMPLES", "FuzzSettings", "Fuzzer", "Stateful", "new_seed"]
