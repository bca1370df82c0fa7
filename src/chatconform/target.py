"""The target under test: base URL, keys and agent ids, from flags, FLOWYTE_* env or a target file."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# attribute name -> (environment variable, key in a target/credentials file, is a secret)
TARGET_FIELDS: dict[str, tuple[str, str, bool]] = {
    "base_url": ("FLOWYTE_BASE_URL", "baseUrl", False),
    "api_key": ("FLOWYTE_API_KEY", "apiKey", True),
    "agent_id": ("FLOWYTE_AGENT_ID", "agentId", False),
    "read_only_key": ("FLOWYTE_READ_ONLY_KEY", "readOnlyKey", True),
    "write_only_key": ("FLOWYTE_WRITE_ONLY_KEY", "writeOnlyKey", True),
    "other_tenant_key": ("FLOWYTE_OTHER_TENANT_KEY", "otherTenantKey", True),
    "other_tenant_agent_id": ("FLOWYTE_OTHER_TENANT_AGENT_ID", "otherTenantAgentId", False),
    "publishable_key": ("FLOWYTE_PUBLISHABLE_KEY", "publishableKey", True),
    "unpublished_agent_id": ("FLOWYTE_UNPUBLISHED_AGENT_ID", "unpublishedAgentId", False),
    # prompts that make the target's agent do something (they depend on the agent: CONTRACT SSE-4)
    "tool_prompt": ("FLOWYTE_TOOL_PROMPT", "toolPrompt", False),
    "knowledge_prompt": ("FLOWYTE_KNOWLEDGE_PROMPT", "knowledgePrompt", False),
    "error_prompt": ("FLOWYTE_ERROR_PROMPT", "errorPrompt", False),
    # a declaration about the agent: its replies are a function of the request (OAI-6 runs only then)
    "deterministic": ("FLOWYTE_DETERMINISTIC", "deterministic", False),
}
#: the settings that are yes/no: a bare flag on the command line, 1/true/yes or 0/false/no in the
#: environment, a JSON boolean in a target file
FLAGS: frozenset[str] = frozenset({"deterministic"})
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


#: what a setting is for, where the name alone does not say
HELP: dict[str, str] = {
    "tool_prompt": "a user message that makes the agent call a tool (SSE-4 tool_call) ",
    "knowledge_prompt": "a user message that makes the agent search its knowledge base "
    "(SSE-4 kb_retrieval) ",
    "error_prompt": "a user message that makes the agent's turn fail (SSE-6 error) ",
    "deterministic": "the agent's reply is a function of the request: OAI-6 compares a streamed "
    "and a plain completion (without it OAI-6 is SKIP) ",
}


class TargetError(ValueError):
    """The target configuration is unusable (bad URL, unreadable target file, ...)."""


@dataclass(slots=True)
class Limits:
    """Bounds on every network call: seconds per connect/read, per whole exchange, and bytes."""

    timeout: float = 10.0
    stream_timeout: float = 30.0
    max_body_bytes: int = 8 * 1024 * 1024
    run_timeout: float = 600.0  # the whole run: later requests are not sent
    max_consecutive_failures: int = 3  # then the target is taken as not answering


@dataclass(slots=True)
class Target:
    base_url: str
    api_key: str | None = None
    agent_id: str | None = None
    read_only_key: str | None = None
    write_only_key: str | None = None
    other_tenant_key: str | None = None
    other_tenant_agent_id: str | None = None
    publishable_key: str | None = None
    unpublished_agent_id: str | None = None
    tool_prompt: str | None = None
    knowledge_prompt: str | None = None
    error_prompt: str | None = None
    deterministic: bool = False
    limits: Limits = field(default_factory=Limits)
    embedded: bool = False

    def __post_init__(self) -> None:
        self.base_url = normalize_base_url(self.base_url)

    def __repr__(self) -> str:
        shown = {
            f: ("<redacted>" if TARGET_FIELDS[f][2] else getattr(self, f)) for f in TARGET_FIELDS
        }
        return f"Target({shown})"

    def secrets(self) -> dict[str, str]:
        """Secret values by the environment variable a reproducer should name instead."""
        out: dict[str, str] = {}
        for name, (env, _, secret) in TARGET_FIELDS.items():
            value = getattr(self, name)
            if secret and value:
                out[env] = value
        return out

    def redact(self, text: str) -> str:
        for env, value in self.secrets().items():
            if value in text:
                text = text.replace(value, f"${env}")
        return text

    def url(self, path: str) -> str:
        return self.base_url + path

    def public(self) -> dict[str, Any]:
        return {
            "baseUrl": self.base_url,
            "embedded": self.embedded,
            "deterministic": self.deterministic,
        }


def normalize_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TargetError(
            f"base URL {url!r} is not an http(s) URL; expected e.g. http://127.0.0.1:8080/api/v1"
        )
    return url.rstrip("/")


def read_target_file(path: str | Path) -> dict[str, str | bool]:
    """Read a target file (the reference server's --credentials-out format) into field values."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TargetError(f"cannot read target file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise TargetError(f"target file {path} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise TargetError(f"target file {path} must hold a JSON object")
    by_file_key = {file_key: name for name, (_, file_key, _) in TARGET_FIELDS.items()}
    out: dict[str, str | bool] = {}
    for key, value in raw.items():
        name = by_file_key.get(key)
        if name is None or value is None:
            continue
        out[name] = flag_value(value, f"{key!r} in {path}") if name in FLAGS else str(value)
    return out


def flag_value(value: str | bool, where: str) -> bool:
    """A yes/no setting from a JSON boolean or an environment string (1/true/yes, 0/false/no)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise TargetError(f"{where} must be true or false (1/true/yes or 0/false/no), not {value!r}")


def resolve_target(
    explicit: dict[str, Any], target_file: str | None, limits: Limits
) -> Target | None:
    """Merge sources, strongest first: explicit flags, FLOWYTE_* environment, the target file.

    Returns None when no base URL is given anywhere (the caller starts the embedded reference).
    """
    values: dict[str, str | bool] = {}
    if target_file:
        values.update(read_target_file(target_file))
    for name, (env, _, _) in TARGET_FIELDS.items():
        raw = os.environ.get(env)
        if name in FLAGS and raw is not None and raw.strip():
            values[name] = flag_value(raw, env)
        elif raw:
            values[name] = raw
    values.update({k: v for k, v in explicit.items() if v})
    if not values.get("base_url"):
        return None
    known = {f.name for f in fields(Target)}
    return Target(**{k: v for k, v in values.items() if k in known}, limits=limits)  # type: ignore[arg-type]


def option_kwargs(attr: str) -> dict[str, Any]:
    """Extra argparse/pytest `addoption` arguments of a setting: a flag takes no value."""
    return {"action": "store_true"} if attr in FLAGS else {}


def target_options(target: Target) -> list[str]:
    """The target's settings as command-line options (a true flag bare, a false one left out)."""
    args: list[str] = []
    for attr in TARGET_FIELDS:
        value = getattr(target, attr)
        if attr in FLAGS:  # a flag may arrive as text from the environment or a config file
            on = value is True or (isinstance(value, str) and flag_value(value, option_name(attr)))
            if on:
                args.append(option_name(attr))
        elif value and isinstance(value, str):
            args += [option_name(attr), value]
    return args


def target_environ(target: Target) -> dict[str, str]:
    """The target's settings as FLOWYTE_* environment variables (flags as "1")."""
    env: dict[str, str] = {}
    for attr, (var, _, _) in TARGET_FIELDS.items():
        value = getattr(target, attr)
        if value is True:
            env[var] = "1"
        elif value and isinstance(value, str):
            env[var] = value
    return env


def option_name(attr: str) -> str:
    return "--" + attr.replace("_", "-")


def add_target_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The target options of every command (each also read from its environment variable)."""
    group = parser.add_argument_group("target (each also read from its environment variable)")
    for attr, (env, _, secret) in TARGET_FIELDS.items():
        hint = f"[{env}]" + (" (secret: prefer the variable)" if secret else "")
        hint = HELP.get(attr, "") + hint
        group.add_argument(
            option_name(attr), dest=attr, default=None, help=hint, **option_kwargs(attr)
        )
    group.add_argument(
        "--target-file",
        default=os.environ.get("FLOWYTE_TARGET_FILE"),
        help="a JSON file of target settings, as written by `chatconform serve --credentials-out` "
        "[FLOWYTE_TARGET_FILE]",
    )
    return group
