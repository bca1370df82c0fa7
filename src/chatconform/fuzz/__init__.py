"""Schema-driven fuzzing: Schemathesis over specs/chat-api.yaml, stateless and stateful.

`Fuzzer` (runner.py) runs the stateless phases, `Stateful` (stateful.py) the link-driven state
machine, `streams.py` holds the SSE-aware checks, `contract.py` the contract's Schemathesis settings
and the failure -> rule mapping, `rejection.py` the contract's rejection list (the spec's
`x-must-reject`), `seed.py` the seed (fixed by default), and `hooks.py` the same wiring for
`schemathesis run` (loaded by the top-level `schemathesis.toml`). The `fuzz` suite
(suites/test_fuzz.py) drives them.

The names below are loaded on first use, so that `chatconform.fuzz.seed` (used by the CLI) does not
import Schemathesis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatconform.fuzz.seed import DEFAULT_SEED, new_seed, parse_seed, resolve_seed

if TYPE_CHECKING:
    from chatconform.fuzz.runner import DEFAULT_MAX_EXAMPLES, Fuzzer, FuzzSettings
    from chatconform.fuzz.stateful import Stateful

__all__ = [
    "DEFAULT_MAX_EXAMPLES",
    "DEFAULT_SEED",
    "FuzzSettings",
    "Fuzzer",
    "Stateful",
    "new_seed",
    "parse_seed",
    "resolve_seed",
]

_LAZY = {
    "DEFAULT_MAX_EXAMPLES": "chatconform.fuzz.runner",
    "Fuzzer": "chatconform.fuzz.runner",
    "FuzzSettings": "chatconform.fuzz.runner",
    "Stateful": "chatconform.fuzz.stateful",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chatconform.fuzz' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
