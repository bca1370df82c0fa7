"""Cases that are a function of the seed alone.

Schemathesis seeds Hypothesis per operation (`hypothesis.seed`, from the run's seed through
`derive_operation_seed`; the state machine through `_hypothesis_internal_use_seed`), and
`derandomize` stays off (a seed takes precedence over it, and derandomize would ignore ours). One
more input remains: Hypothesis draws about 5 % of its strings and numbers from the constants it
finds in the *local* (not site-packages) modules imported so far. Which modules those are depends on
how chatconform is installed (a checkout or a wheel) and on which suites ran first, so the same seed
could send different cases. `seed_only()` hides those local constants while the fuzz suite
generates; the global pool Hypothesis ships with is kept.

The hook is a private Hypothesis name, checked here: if a Hypothesis release renames it, nothing is
patched (`PATCHED` is False) and the self-test comparing two runs says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

try:  # private Hypothesis API (6.13x+): the pool of constants from local modules
    from hypothesis.internal.conjecture import providers as _providers
    from hypothesis.internal.constants_ast import Constants as _Constants

    PATCHED = callable(getattr(_providers, "_get_local_constants", None)) and hasattr(
        _providers, "CONSTANTS_CACHE"
    )
except ImportError:  # pragma: no cover - an older or newer Hypothesis
    PATCHED = False


@contextmanager
def seed_only() -> Iterator[None]:
    """While active, Hypothesis draws no constants from local modules (see the module doc)."""
    if not PATCHED:
        yield
        return
    original = _providers._get_local_constants
    empty = _Constants()
    _providers.CONSTANTS_CACHE.cache.clear()
    _providers._get_local_constants = lambda: empty
    try:
        yield
    finally:
        _providers._get_local_constants = original
        _providers.CONSTANTS_CACHE.cache.clear()
