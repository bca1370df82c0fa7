"""pytest plugin: the user's Ctrl-C, wherever it lands, ends the suites as an interrupt.

- Landed in a finalizer or weakref callback, it is not printed as a traceback. pytest's own
  unraisableexception plugin replaces `sys.unraisablehook` when it is configured (and puts back the
  one before it when it is done); this plugin runs after it and wraps the hook it installed with
  `chatconform.interrupt.quiet_unraisable`.
- Landed on an instruction with no line number (code that `exec` built, as dataclasses do, or
  `ast`'s visitor loop), its traceback has an entry whose `tb_lineno` is None, and pytest's
  terminal reporter, formatting it, fails with `TypeError: unsupported operand type(s) for -:
  'NoneType' and 'int'`: pytest.main raised that instead of returning exit 2, and `chatconform run`
  ended exit 1 with the traceback. The traceback is cut before such an entry (the frames below it
  are where a signal happened to land, no use to anyone).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from chatconform.interrupt import quiet_unraisable

if TYPE_CHECKING:
    from types import TracebackType


@pytest.hookimpl(trylast=True)  # after pytest's unraisableexception plugin installed its hook
def pytest_configure(config: pytest.Config) -> None:
    if not getattr(sys.unraisablehook, "quiet_unraisable", False):
        sys.unraisablehook = quiet_unraisable(sys.unraisablehook)


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter formats it
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    cut_before_unnumbered(excinfo.tb)


def cut_before_unnumbered(tb: TracebackType | None) -> None:
    """End the traceback chain `tb` before its first entry with no line number (if it has one)."""
    while tb is not None and tb.tb_next is not None:
        if tb.tb_next.tb_lineno is None:
            tb.tb_next = None
            return
        tb = tb.tb_next
