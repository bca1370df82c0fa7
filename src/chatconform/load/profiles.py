"""Load profiles: Locust config files in ``loadtests/profiles/<name>.conf``.

They work as ``locust --config loadtests/profiles/smoke.conf`` too; ``chatconform load`` reads
the few keys it needs (``key = value`` lines, ``#`` comments) and lets its own flags override.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from chatconform.load import slo as slo_mod
from chatconform.load.thresholds import GATES
from chatconform.paths import resource

_TIMESPAN = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class ProfileError(ValueError):
    """Unknown profile or a bad value in it."""


def parse_timespan(text: str) -> float:
    """``30s``, ``2m``, ``1h30m``, ``45`` (seconds) -> seconds."""
    text = str(text).strip().lower()
    try:
        value = float(text)
    except ValueError:
        m = _TIMESPAN.match(text)
        if not text or m is None:
            raise ValueError(f"not a time span: {text!r} (e.g. 30s, 2m, 1h30m)") from None
        h, mi, s = (int(g) if g else 0 for g in m.groups())
        value = h * 3600.0 + mi * 60.0 + s
    if value <= 0:
        raise ValueError(f"time span must be > 0: {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    locustfiles: tuple[Path, ...]
    users: int | None = None
    spawn_rate: float | None = None
    run_time: float | None = None
    endpoint: str | None = None
    rate: float | None = None
    arrival: str | None = None
    gates: dict[str, float] = field(default_factory=dict)  # e.g. max_violation_rate: 0
    sweep: bool = False  # open-loop steps to the knee (chatconform.load.sweep)
    slo: dict[str, float] = field(default_factory=dict)


def loadtests_dir() -> Path:
    return resource("loadtests")


def available() -> list[str]:
    return sorted(p.stem for p in (loadtests_dir() / "profiles").glob("*.conf"))


def read_conf(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def load(name: str | None) -> Profile:
    """The named profile; None gives the default locustfile and no preset values."""
    base = loadtests_dir()
    if name is None:
        return Profile("default", (base / "locustfile.py",))
    path = base / "profiles" / f"{name}.conf"
    if not path.is_file():
        raise ProfileError(f"unknown profile {name!r}; choose from {', '.join(available())}")
    conf = read_conf(path)
    files = tuple(
        base.parent / f.strip()
        for f in conf.get("locustfile", "loadtests/locustfile.py").split(",")
        if f.strip()
    )
    try:
        gates = {
            option: float(conf["cc-" + option.replace("_", "-")])
            for option in GATES
            if "cc-" + option.replace("_", "-") in conf
        }
        return Profile(
            name=name,
            locustfiles=files,
            users=int(conf["users"]) if "users" in conf else None,
            spawn_rate=float(conf["spawn-rate"]) if "spawn-rate" in conf else None,
            run_time=parse_timespan(conf["run-time"]) if "run-time" in conf else None,
            endpoint=conf.get("cc-endpoint"),
            rate=float(conf["cc-rate"]) if "cc-rate" in conf else None,
            arrival=conf.get("cc-arrival"),
            gates=gates,
            slo=slo_mod.parse(conf.get("cc-slo")),
            sweep=conf.get("cc-sweep", "false").lower() in ("1", "true", "yes"),
        )
    except ValueError as exc:
        raise ProfileError(f"profile {name!r} ({path}): {exc}") from None
