"""chatconform.interrupt: a Ctrl-C that lands in a finalizer is neither lost nor a traceback.

A SIGINT delivered while Python runs a weakref callback raises KeyboardInterrupt where it cannot
propagate (CI saw one, from a WeakSet's `_remove`, print a pytest warning with a traceback at the
end of an interrupted run). These run pytest in a subprocess, with the plugin `chatconform run`
loads, over a test whose finalizer raises.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chatconform import interrupt

FINALIZER_RAISES = """
import gc

from chatconform import interrupt


class Raises:
    def __init__(self, exc):
        self.exc = exc

    def __del__(self):
        raise self.exc


def test_finalizer():
    if {recorded}:
        interrupt.record()
    Raises({exc}("from a finalizer"))
    gc.collect()
"""


def _run(tmp_path: Path, *, recorded: bool, exc: str) -> str:
    test = tmp_path / "test_finalizer.py"
    test.write_text(FINALIZER_RAISES.format(recorded=recorded, exc=exc))
    cmd = [sys.executable, "-m", "pytest", str(test), "-p", "chatconform.quietinterrupt"]
    cmd += ["-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", "/dev/null"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "1 passed" in done.stdout, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_a_recorded_ctrl_c_in_a_finalizer_prints_nothing(tmp_path: Path) -> None:
    out = _run(tmp_path, recorded=True, exc="KeyboardInterrupt")
    assert "Traceback" not in out, out
    assert "PytestUnraisableExceptionWarning" not in out, out


@pytest.mark.parametrize(
    ("recorded", "exc"),
    [(False, "KeyboardInterrupt"), (True, "ValueError")],
    ids=["keyboardinterrupt-nobody-recorded", "another-exception-after-ctrl-c"],
)
def test_any_other_unraisable_exception_is_still_reported(
    tmp_path: Path, recorded: bool, exc: str
) -> None:
    out = _run(tmp_path, recorded=recorded, exc=exc)
    assert "PytestUnraisableExceptionWarning" in out, out
    assert exc in out, out


def test_quiet_unraisable_passes_everything_else_on(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[BaseException | None] = []
    hook = interrupt.quiet_unraisable(lambda u: seen.append(u.exc_value))

    def unraisable(exc: BaseException) -> Any:  # sys.UnraisableHookArgs is not a runtime name
        return SimpleNamespace(exc_type=type(exc), exc_value=exc, exc_traceback=None)

    hook(unraisable(KeyboardInterrupt()))  # no Ctrl-C recorded: passed on
    monkeypatch.setattr(interrupt, "_at", [0.0])
    hook(unraisable(KeyboardInterrupt()))  # the user's: dropped
    hook(unraisable(ValueError("x")))
    assert [type(e) for e in seen] == [KeyboardInterrupt, ValueError]
