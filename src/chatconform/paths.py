"""Where the suites, specs and load tests live: in a checkout, or bundled inside an installed wheel."""

from __future__ import annotations

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
