"""pytest plugin: the user's Ctrl-C, landed in a finalizer, is not printed as a traceback.

pytest's own unraisableexception plugin replaces `sys.unraisablehook` when it is configured (and
puts back the one before it when it is done); this plugin runs after it and wraps the hook it
installed with `chatconform.interrupt.quiet_unraisable`.
"""

from __future__ import annotations

import sys

import pytest

from chatconform.interrupt import quiet_unraisable


@pytest.hookimpl(trylast=True)  # after pytest's unraisableexception plugin installed its hook
def pytest_configure(config: pytest.Config) -> None:
    if not getattr(sys.unraisablehook, "quiet_unraisable", False):
        sys.unraisablehook = quiet_unraisable(sys.unraisablehook)
