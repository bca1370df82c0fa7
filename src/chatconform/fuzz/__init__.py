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

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatconform.fuzz.seed import DEFAULT_SEED, new_seed, parse_seed, resolve_seed

# Hypothesis keeps its Unicode tables in `.hypothesis/` under the working directory (it reads this
# variable on first use): a user's project should not get that folder from a conformance run, and a
# table computed once (seconds of CPU) then serves every later run wherever it starts. Its example
# database stays off (runner.py).
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY",
    str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "chatconform"
        / "hypothesis"
    ),
)

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
