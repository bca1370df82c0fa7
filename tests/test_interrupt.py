"""chatconform.interrupt: a Ctrl-C that lands in a finalizer is neither lost nor a traceback.

A SIGINT delivered while Python runs a weakref callback raises KeyboardInterrupt where it cannot
propagate (CI saw one, from a WeakSet's `_remove`, print a pytest warning with a traceback at the
end of an interrupted run). These run pytest in a subprocess, with the plugin `chatconform run`
loads, over a test whose finalizer raises.
"""

from __future__ import annotations

import signal
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
    done = _pytest_with_the_plugin(tmp_path, FINALIZER_RAISES.format(recorded=recorded, exc=exc))
    assert "1 passed" in done.stdout, done.stdout + done.stderr
    return done.stdout + done.stderr


def _pytest_with_the_plugin(tmp_path: Path, module: str) -> subprocess.CompletedProcess[str]:
    """pytest in a child process over `module` (as test_module.py in `tmp_path`), with the
    plugin `chatconform run` loads (chatconform.quietinterrupt)."""
    test = tmp_path / "test_module.py"
    test.write_text(module)
    cmd = [sys.executable, "-m", "pytest", str(test), "-p", "chatconform.quietinterrupt"]
    cmd += ["-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", "/dev/null"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)


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


CAUGHT_IN_EXEC = """
import sys

from chatconform.interrupt import exit_module_main

try:
    exec("raise KeyboardInterrupt")  # as dataclasses and namedtuple build their methods
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
{exit}(130)
"""


@pytest.mark.parametrize(
    ("exit", "code"),
    [("exit_module_main", 130), pytest.param("sys.exit", -signal.SIGINT, id="cpython-alone")],
)
def test_python_dash_m_exits_130_after_a_ctrl_c_caught_from_exec(
    tmp_path: Path, exit: str, code: int
) -> None:
    """`python -m chatconform.cli run`, Ctrl-C during the fuzz fixture's imports: 3 runs in 7 ended
    killed by SIGINT (-2 to subprocess), not 130. The second case is CPython alone, the cause."""
    if exit == "sys.exit" and sys.version_info >= (3, 14):
        pytest.skip("CPython's behaviour checked on 3.11 to 3.13 only")
    (tmp_path / "caught_in_exec.py").write_text(CAUGHT_IN_EXEC.format(exit=exit))
    cmd = [sys.executable, "-m", "caught_in_exec"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert done.stderr == "interrupted\n"


def test_the_cli_under_python_dash_m_exits_130_after_such_a_ctrl_c(tmp_path: Path) -> None:
    """The same through `chatconform.cli`'s own `__main__` (the run itself replaced by one that
    is interrupted inside an exec)."""
    (tmp_path / "cli_interrupted.py").write_text(
        "import runpy\n"
        "import chatconform.run\n"
        "def interrupted(args):\n"
        "    exec('raise KeyboardInterrupt')\n"
        "chatconform.run.run_command = interrupted\n"
        "runpy.run_module('chatconform.cli', run_name='__main__', alter_sys=True)\n"
    )
    cmd = [sys.executable, "-W", "ignore::RuntimeWarning", "-m", "cli_interrupted", "run"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 130, done.stderr
    assert done.stderr == "chatconform: interrupted\n"


UNNUMBERED = """
def raiser():
    raise KeyboardInterrupt


raiser.__code__ = raiser.__code__.replace(co_linetable=b"")  # as a signal landing at line "-1"


def test_interrupted():
    raiser()
"""


def _entries(tb: Any) -> list[Any]:
    out = []
    while tb is not None:
        out.append(tb)
        tb = tb.tb_next
    return out


def test_a_traceback_is_cut_before_its_first_entry_with_no_line_number() -> None:
    from chatconform.quietinterrupt import cut_before_unnumbered

    namespace: dict[str, Any] = {}
    exec(UNNUMBERED, namespace)  # the test module above, in-process
    try:
        namespace["test_interrupted"]()
    except KeyboardInterrupt as exc:
        tb = exc.__traceback__
    linenos = [e.tb_lineno for e in _entries(tb)]
    assert linenos[-1] is None  # what pytest's reporter cannot format
    cut_before_unnumbered(tb)
    assert [e.tb_lineno for e in _entries(tb)] == linenos[:-1]
    cut_before_unnumbered(None)  # nothing to cut


def test_pytest_reports_a_ctrl_c_that_landed_on_no_line_as_an_interrupt(tmp_path: Path) -> None:
    """Seen in `chatconform run`: a Ctrl-C in `ast`'s visitor (Hypothesis describing a lambda) made
    pytest.main raise `TypeError: unsupported operand type(s) for -: 'NoneType' and 'int'`."""
    done = _pytest_with_the_plugin(tmp_path, UNNUMBERED)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out  # pytest's "interrupted"
    assert "TypeError" not in out, out
    assert "test_module.py:10: KeyboardInterrupt" in out, out
