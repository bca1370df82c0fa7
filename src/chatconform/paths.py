"""Paths: where the suites, specs and load tests live (a checkout, or bundled inside an installed
wheel), and paths as users give them on the command line (`user_path`, `user_paths`, `shown`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent
_BUNDLED = _PKG / "_bundled"
_CHECKOUT = _PKG.parents[1]


def resource(name: str) -> Path:
    """The directory `name` (suites, specs, loadtests) of this installation."""
    bundled = _BUNDLED / name
    return bundled if bundled.is_dir() else _CHECKOUT / name


def suites_dir() -> str:
    """Where this installation's suites come from (for diagnostics and the wheel self-test)."""
    return str(resource("suites"))


def user_path(value: str | os.PathLike[str] | None) -> Path | None:
    """A path as the user typed it, made absolute against the working directory *now*.

    Call it on every path option before anything changes directory or starts a child process with
    another working directory (Allure runs in a temporary folder, Locust in the report directory),
    so `reports/x` means the same folder to every step. `~` is expanded; None stays None.
    """
    if value is None or str(value) == "":
        return None
    return Path(os.path.abspath(Path(value).expanduser()))


def shown(path: str | os.PathLike[str]) -> str:
    """How a command prints a path: relative to the working directory when it lies under it (so it
    reads as typed and pastes into the next command as is), else absolute."""
    p = Path(os.path.abspath(path))
    try:
        rel = p.relative_to(Path.cwd())
    except ValueError:
        return str(p)
    return str(rel) if str(rel) != "." else "."


# every path option of run, load and report (argparse dest names); --expectations and --config are
# listed ahead of the commands that will take them. `serve` is left out on purpose: it opens its
# --db and --credentials-out in the user's directory (it never changes directory or starts a
# child), and it prints them as typed.
PATH_OPTIONS: tuple[str, ...] = (
    "report_dir", "target_file", "dir", "compare", "output", "expectations", "config", "locustfile",
)  # fmt: skip


def user_paths(args: argparse.Namespace, names: tuple[str, ...] = PATH_OPTIONS) -> None:
    """Make every path option in `args` absolute against the working directory (in place), once,
    at the start of a command: a child process or a tool run in another directory then finds the
    same files. Idempotent; options a command does not have are ignored."""
    for name in names:
        value = getattr(args, name, None)
        if isinstance(value, list):
            setattr(args, name, [str(user_path(v)) for v in value if v])
        elif value:
            setattr(args, name, str(user_path(value)))
