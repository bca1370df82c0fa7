"""The project config file: `chatconform.toml` (or `--config FILE`, or `[tool.chatconform]` in
pyproject.toml) gives `run` and `verify` their settings, so a CI job needs no dozen flags.

Precedence, strongest first: the command line, the FLOWYTE_* environment (target settings), the
config file, the built-in defaults. Keys are never written in the file: a secret is given as the NAME
of the environment variable that holds it (`api_key_env = "MY_FLOWYTE_KEY"`). A key the file does not
know is a usage error naming the file, the line and the valid keys.
"""

from __future__ import annotations

import argparse
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatconform.errors import UsageError
from chatconform.load.thresholds import GATES
from chatconform.target import TARGET_FIELDS

CONFIG_FILE = "chatconform.toml"
PYPROJECT = "pyproject.toml"
SECRETS = tuple(a for a, (_, _, secret) in TARGET_FIELDS.items() if secret)
PLAIN_TARGET = tuple(a for a, (_, _, secret) in TARGET_FIELDS.items() if not secret)

# table -> key -> (type, the `run`/`verify` option dest it sets, or None for keys read elsewhere)
Spec = dict[str, tuple[type | tuple[type, ...], str | None]]
TARGET: Spec = {
    **{a: (str, a) for a in PLAIN_TARGET},
    **{f"{a}_env": (str, a) for a in SECRETS},
    "target_file": (str, "target_file"),
    "deterministic": (bool, "deterministic"),
}
RUN: Spec = {
    "suites": (list, "suite"),
    "strict": (bool, "strict"),
    "seed": ((int, str), "seed"),
    "max_examples": (int, "max_examples"),
    "report_dir": (str, "report_dir"),
    "expectations": (str, "expectations"),
    "strict_expectations": (bool, "strict_expectations"),
    "confirm": (int, "confirm"),
    "flaky": (str, "flaky"),
    "sdk": (str, "sdk"),
}
BOUNDS: Spec = {
    "timeout": ((int, float), "timeout"),
    "stream_timeout": ((int, float), "stream_timeout"),
    "run_timeout": ((int, float), "run_timeout"),
    "max_body_mb": ((int, float), "max_body_mb"),
}
VERIFY: Spec = {
    "load_profile": (str, "load_profile"),
    "load": (bool, "load"),
}
PROFILE: Spec = {
    "base": (str, None),  # a built-in profile (loadtests/profiles/<name>.conf) to start from
    "users": (int, None),
    "spawn_rate": ((int, float), None),
    "run_time": ((str, int, float), None),
    "endpoint": (str, None),
    "rate": ((int, float), None),
    "arrival": (str, None),
    "turns": (int, None),
    "slo": (str, None),
    **{gate: ((int, float), None) for gate in GATES},  # thresholds: max_ttft_p95_ms, ...
}
TABLES: dict[str, Spec] = {"target": TARGET, "run": RUN, "bounds": BOUNDS, "verify": VERIFY}
PATHS = ("target_file", "expectations", "report_dir")  # relative to the config file's directory


class ConfigError(UsageError):
    """A config file that cannot be used: exit 2, naming the file and line."""


@dataclass
class Setting:
    value: Any
    source: str  # "chatconform.toml:12", "command line", "env FLOWYTE_BASE_URL", "default"
    secret_env: str | None = None  # for a secret: the variable it is read from


@dataclass
class Config:
    path: Path | None = None
    settings: dict[str, Setting] = field(default_factory=dict)  # option dest -> setting
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # load profiles
    profile_lines: dict[str, str] = field(default_factory=dict)  # profile -> "file:line"


# -- finding and reading ----------------------------------------------------------------------
def find(explicit: str | None, cwd: Path | None = None) -> tuple[Path, tuple[str, ...]] | None:
    """The config file and the table prefix its settings live under (() or ('tool','chatconform'))."""
    cwd = cwd or Path.cwd()
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found")
        if p.name == PYPROJECT:
            return p, ("tool", "chatconform")
        return p, ()
    if (cwd / CONFIG_FILE).is_file():
        return cwd / CONFIG_FILE, ()
    py = cwd / PYPROJECT
    if py.is_file():
        try:
            data = tomllib.loads(py.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            return None  # not ours to judge
        if isinstance(data.get("tool"), dict) and "chatconform" in data["tool"]:
            return py, ("tool", "chatconform")
    return None


def _line_of(text: str, table: tuple[str, ...], key: str | None) -> int:
    """The 1-based line of `key` in `[table]` (or of the table's header when key is None)."""
    current: tuple[str, ...] = ()
    header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    keyline = re.compile(r'^\s*"?([A-Za-z0-9_.-]+)"?\s*=')
    first_header = 0
    for i, line in enumerate(text.splitlines(), 1):
        m = header.match(line)
        if m:
            current = tuple(p.strip().strip('"') for p in m.group(1).split("."))
            if current == table and key is None:
                return i
            if current == table and not first_header:
                first_header = i
            continue
        k = keyline.match(line)
        if k and key is not None:
            parts = tuple(k.group(1).split("."))
            full = current + parts
            if full[: len(table) + 1] == (*table, key):
                return i
    return first_header or 1


def load(explicit: str | None = None, cwd: Path | None = None) -> Config:
    found = find(explicit, cwd)
    if found is None:
        return Config()
    path, prefix = found
    try:
        text = path.read_text(encoding="utf-8")
        data: dict[str, Any] = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for part in prefix:
        data = data.get(part) or {}
    return parse(data, path, text, prefix)


def parse(data: dict[str, Any], path: Path, text: str, prefix: tuple[str, ...] = ()) -> Config:
    cfg = Config(path=path)
    base = path.parent

    def where(table: tuple[str, ...], key: str | None) -> str:
        return f"{path}:{_line_of(text, prefix + table, key)}"

    def wrong(table: tuple[str, ...], key: str, valid: list[str], what: str = "key") -> ConfigError:
        name = ".".join((*prefix, *table)) or "(top level)"
        return ConfigError(
            f"{where(table, key)}: unknown {what} {key!r} in [{name}]; valid: {', '.join(valid)}"
        )

    top = [*TABLES, "load"]
    for tname, body in data.items():
        if tname not in top:
            raise wrong((), tname, top, "table")
        if not isinstance(body, dict):
            raise ConfigError(f"{where((), tname)}: {tname} must be a table ([{tname}])")
        if tname == "load":
            _parse_load(cfg, body, where, wrong)
            continue
        spec = TABLES[tname]
        for key, value in body.items():
            if key not in spec:
                if tname == "target" and key in SECRETS:
                    raise ConfigError(
                        f"{where((tname,), key)}: keys are never written in the config file; "
                        f'name the environment variable that holds it: {key}_env = "MY_VARIABLE"'
                    )
                raise wrong((tname,), key, list(spec))
            kind, dest = spec[key]
            _typecheck(value, kind, f"{where((tname,), key)}: {tname}.{key}")
            assert dest is not None
            loc = where((tname,), key)
            if key.endswith("_env") and dest in SECRETS:
                cfg.settings[dest] = Setting(os.environ.get(str(value)), loc, secret_env=str(value))
                continue
            if key in PATHS:
                value = str((base / str(value)) if not Path(str(value)).is_absolute() else value)
            if key == "suites":
                value = [str(v) for v in value]
            cfg.settings[dest] = Setting(value, loc)
    return cfg


def _parse_load(cfg: Config, body: dict[str, Any], where: Any, wrong: Any) -> None:
    for key, value in body.items():
        if key != "profiles":
            raise wrong(("load",), key, ["profiles"])
        if not isinstance(value, dict):
            raise ConfigError(f"{where(('load',), key)}: load.profiles must be a table")
        for name, prof in value.items():
            if not isinstance(prof, dict):
                raise ConfigError(
                    f"{where(('load', 'profiles'), name)}: a profile is a table "
                    f"([load.profiles.{name}])"
                )
            for k, v in prof.items():
                if k not in PROFILE:
                    raise wrong(("load", "profiles", name), k, list(PROFILE))
                _typecheck(v, PROFILE[k][0], f"{where(('load', 'profiles', name), k)}: {k}")
            cfg.profiles[name] = dict(prof)
            cfg.profile_lines[name] = where(("load", "profiles", name), None)


def _typecheck(value: Any, kind: type | tuple[type, ...], where: str) -> None:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if kind is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if not ok:
        names = " or ".join("list of strings" if k is list else k.__name__ for k in kinds)
        raise ConfigError(f"{where} must be {names}, not {value!r}")


# -- merging with the command line ------------------------------------------------------------
def explicit_dests(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The option dests the user gave on the command line (defaults suppressed and re-parsed)."""
    import copy

    quiet = copy.deepcopy(parser)

    def suppress(p: argparse.ArgumentParser) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    suppress(sub)
            elif action.dest != "help":
                action.default = argparse.SUPPRESS

    suppress(quiet)
    return set(vars(quiet.parse_args(argv)))


def apply(args: argparse.Namespace, cfg: Config, explicit: set[str]) -> dict[str, Setting]:
    """Fill the options the command line did not give from the config file (target settings
    also yield to their FLOWYTE_* variable). Returns every setting with where it came from."""
    merged: dict[str, Setting] = {}
    env_of = {a: env for a, (env, _, _) in TARGET_FIELDS.items()}
    dests = set(vars(args)) | set(cfg.settings)
    for dest in sorted(dests):
        if dest in ("command", "config", "exp_command", "config_command", "verbose"):
            continue
        given = getattr(args, dest, None)
        s = cfg.settings.get(dest)
        if dest in explicit:
            merged[dest] = Setting(given, "command line")
        elif dest in env_of and os.environ.get(env_of[dest]):
            merged[dest] = Setting(os.environ[env_of[dest]], f"env {env_of[dest]}")
            if hasattr(args, dest):
                setattr(args, dest, os.environ[env_of[dest]])
        elif s is not None:
            if not hasattr(args, dest):
                continue  # a setting this command does not take
            setattr(args, dest, s.value)
            merged[dest] = s
        elif hasattr(args, dest):
            merged[dest] = Setting(given, "default")
    return merged


def redacted(merged: dict[str, Setting]) -> dict[str, dict[str, Any]]:
    """The merged settings as JSON-able data, secrets shown only as where they come from."""
    out: dict[str, dict[str, Any]] = {}
    for dest, s in sorted(merged.items()):
        if dest in SECRETS:
            env = s.secret_env or TARGET_FIELDS[dest][0]
            shown = (
                f"${env} ({'set' if s.value else 'not set'})" if s.value or s.secret_env else None
            )
            if s.source == "command line":
                shown = "<given on the command line: redacted>"
            out[dest] = {"value": shown, "source": s.source}
        else:
            out[dest] = {"value": s.value, "source": s.source}
    return out


def show_lines(merged: dict[str, Setting], cfg: Config) -> list[str]:
    data = redacted(merged)
    width = max((len(k) for k in data), default=10)
    lines = [f"# config file: {cfg.path or '(none: no chatconform.toml or [tool.chatconform])'}"]
    for key, item in data.items():
        value = item["value"]
        text = "(unset)" if value is None else repr(value) if not isinstance(value, str) else value
        lines.append(f"{key:<{width}} = {text}    # {item['source']}")
    for name, prof in cfg.profiles.items():
        lines.append(f"load profile {name!r}: {prof}    # {cfg.profile_lines.get(name, '')}")
    return lines
