"""Ctrl-C, kept until the run stops.

Python turns SIGINT into a KeyboardInterrupt at one point of the main thread; a library that catches
it there (Hypothesis reports what an explicit example raised, BaseException included) can swallow
it, and the run would go on to the end, exit 0. So `chatconform run` also records the interrupt
here, and every request (chatconform.client) and every fuzz case raises it again until the suites
stop: the user's Ctrl-C ends the run within one exchange, wherever it landed.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    UnraisableHook = Callable[[sys.UnraisableHookArgs], object]
else:
    UnraisableHook = Callable[[Any], object]  # sys.UnraisableHookArgs is not a runtime name

_at: list[float] = []  # monotonic time of each SIGINT received during the suites


def record() -> None:
    _at.append(time.monotonic())


def requested() -> bool:
    return bool(_at)


def check() -> None:
    """Raise KeyboardInterrupt once the user has interrupted the run."""
    if _at:
        raise KeyboardInterrupt("interrupted (Ctrl-C)")


def quiet_unraisable(previous: UnraisableHook) -> UnraisableHook:
    """`previous` (an unraisable-exception hook), minus the user's own Ctrl-C.

    A SIGINT that lands while Python runs a finalizer or a weakref callback (the garbage collector's
    or a WeakSet's) raises its KeyboardInterrupt there, where Python cannot propagate it: it becomes
    an "unraisable" exception, which pytest prints as a warning with a traceback. The interrupt is
    not lost (it was recorded above, and the next request raises it again), so that one traceback
    is noise; any other unraisable exception, or a KeyboardInterrupt nobody recorded, still goes to
    `previous`.
    """

    def hook(unraisable: sys.UnraisableHookArgs) -> object:
        if requested() and isinstance(unraisable.exc_value, KeyboardInterrupt):
            return None
        return previous(unraisable)

    hook.quiet_unraisable = True  # type: ignore[attr-defined]
    return hook


def exit_module_main(code: int) -> NoReturn:
    """`sys.exit(code)` for a `python -m` entry point, keeping 130 after a Ctrl-C it handled.

    CPython (3.11 to 3.13, at least) makes `python -m` exit by SIGINT, whatever the code, once a
    KeyboardInterrupt has passed out of an `exec()` of a string, even one caught afterwards; and
    dataclasses and namedtuples build their methods that way, so a Ctrl-C during an import can do it
    (seen: 3 runs in 7 ended "killed by SIGINT" instead of exit 130). An installed `chatconform`
    script runs as a file and is not affected. So after a handled interrupt this flushes what is
    buffered and leaves with `os._exit(130)`; any other code goes through `sys.exit`.
    """
    if code == 130:
        import logging
        import os

        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(130)
    sys.exit(code)
