"""The fuzz suite's seed: fixed by default, so the same target gets the same cases run after run.

`--seed N` (`--fuzz-seed N` under pytest) replays a run; `--seed random` (or `FLOWYTE_SEED=random`)
asks for exploration with a fresh seed, which is printed and stored in summary.json like any other.
Precedence: the option, then the `FLOWYTE_SEED` environment variable, then `DEFAULT_SEED`.
This module imports nothing heavy: the CLI validates `--seed` with it before any suite loads.
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Mapping

#: The seed of every run that names none (a date, nothing more).
DEFAULT_SEED = 20261129
SEED_ENV = "FLOWYTE_SEED"
RANDOM = "random"
MAX_SEED = 2**63 - 1


def new_seed() -> int:
    return secrets.randbelow(2**31)


def _parse(text: str) -> int | None:
    """The integer seed `text` names, None for "random"; ValueError for anything else."""
    value = text.strip()
    if value.lower() == RANDOM:
        return None
    try:
        seed = int(value, 10)
    except ValueError:
        raise ValueError(f"a seed is an integer or 'random', not {text!r}") from None
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"a seed is from 0 to {MAX_SEED}, not {seed}")
    return seed


def check_seed(text: str) -> str:
    """`text`, normalised, when it names a seed ("random" or an integer); else ValueError.

    For argparse (`type=`): the suite resolves "random" itself, so the drawn seed is the one printed.
    """
    seed = _parse(text)
    return RANDOM if seed is None else str(seed)


def seed_argument(text: str) -> str:
    """argparse `type=` for `--seed`: a one-line usage error for anything but a seed."""
    try:
        return check_seed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_seed(text: str) -> int:
    """The seed `text` names: an integer, or a fresh one for "random". ValueError otherwise."""
    seed = _parse(text)
    return new_seed() if seed is None else seed


def resolve_seed(option: str | None, environ: Mapping[str, str] | None = None) -> int:
    """The run's seed: the option's, else FLOWYTE_SEED's, else DEFAULT_SEED."""
    env = os.environ if environ is None else environ
    if option is not None and option.strip():
        return parse_seed(option)
    from_env = env.get(SEED_ENV, "")
    if from_env.strip():
        try:
            return parse_seed(from_env)
        except ValueError as exc:
            raise ValueError(f"{SEED_ENV}: {exc}") from None
    return DEFAULT_SEED
