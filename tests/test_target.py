"""Target settings: the yes/no `deterministic` declaration and the agent's prompts, through flags,
FLOWYTE_* environment and target files; and what the reference server writes about itself."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from chatconform.reference.agent import KNOWLEDGE_PROMPT, TOOL_PROMPT, plan_turn
from chatconform.reference.faults import Switches
from chatconform.reference.settings import Settings
from chatconform.target import (
    Limits,
    Target,
    TargetError,
    add_target_arguments,
    flag_value,
    read_target_file,
    resolve_target,
    target_environ,
    target_options,
)

URL = "http://127.0.0.1:9/api/v1"


@pytest.fixture(autouse=True)
def _no_flowyte_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FLOWYTE_BASE_URL", "FLOWYTE_DETERMINISTIC", "FLOWYTE_TOOL_PROMPT"):
        monkeypatch.delenv(var, raising=False)


def target_file(tmp_path: Path, **values: object) -> str:
    path = tmp_path / "target.json"
    path.write_text(json.dumps({"baseUrl": URL, **values}), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("raw", "want"),
    [(True, True), (False, False), ("1", True), ("yes", True), ("TRUE", True), ("0", False),
     ("no", False), ("off", False)],
)  # fmt: skip
def test_flag_value(raw: str | bool, want: bool) -> None:
    assert flag_value(raw, "X") is want


def test_flag_value_refuses_anything_else_in_one_line() -> None:
    with pytest.raises(TargetError, match=r"^FLOWYTE_DETERMINISTIC must be true or false"):
        flag_value("maybe", "FLOWYTE_DETERMINISTIC")


def test_not_declared_means_not_deterministic(tmp_path: Path) -> None:
    target = resolve_target({}, target_file(tmp_path), Limits())
    assert target is not None
    assert target.deterministic is False


@pytest.mark.parametrize(("value", "want"), [(True, True), (False, False), ("yes", True)])
def test_target_file_declares_it(tmp_path: Path, value: object, want: bool) -> None:
    assert read_target_file(target_file(tmp_path, deterministic=value))["deterministic"] is want


def test_target_file_with_a_bad_declaration_is_a_target_error(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="'deterministic' in"):
        read_target_file(target_file(tmp_path, deterministic="sometimes"))


def test_environment_overrides_the_file_and_the_flag_overrides_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = target_file(tmp_path, deterministic=True)
    monkeypatch.setenv("FLOWYTE_DETERMINISTIC", "0")
    target = resolve_target({}, path, Limits())
    assert target is not None
    assert target.deterministic is False
    target = resolve_target({"deterministic": True}, path, Limits())
    assert target is not None
    assert target.deterministic is True


def test_prompts_come_from_file_env_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = target_file(tmp_path, toolPrompt="file tool", knowledgePrompt="file kb")
    monkeypatch.setenv("FLOWYTE_TOOL_PROMPT", "env tool")
    target = resolve_target({"knowledge_prompt": "flag kb"}, path, Limits())
    assert target is not None
    assert (target.tool_prompt, target.knowledge_prompt) == ("env tool", "flag kb")


def test_command_line_flag_and_prompt_options() -> None:
    parser = argparse.ArgumentParser()
    add_target_arguments(parser)
    args = parser.parse_args(["--deterministic", "--tool-prompt", "Store near 10001?"])
    assert args.deterministic is True
    assert args.tool_prompt == "Store near 10001?"
    assert parser.parse_args([]).deterministic is None  # not given: the env or the file decide


def test_settings_as_options_and_environment() -> None:
    target = Target(URL, api_key="flowyte_sk_test_x", tool_prompt="Store near 10001?")
    assert "--deterministic" not in target_options(target)
    assert "FLOWYTE_DETERMINISTIC" not in target_environ(target)
    target.deterministic = True
    opts = target_options(target)
    assert opts.count("--deterministic") == 1
    assert "True" not in opts  # a bare flag, no value
    assert opts[opts.index("--tool-prompt") + 1] == "Store near 10001?"
    env = target_environ(target)
    assert env["FLOWYTE_DETERMINISTIC"] == "1"
    assert env["FLOWYTE_API_KEY"] == "flowyte_sk_test_x"
    assert all(isinstance(v, str) for v in env.values())


def test_public_view_says_whether_deterministic() -> None:
    assert Target(URL, deterministic=True).public()["deterministic"] is True


# -- the reference's declaration and prompts ---------------------------------------------------


def test_reference_prompts_do_what_the_credentials_say() -> None:
    tool = plan_turn(TOOL_PROMPT, 8)
    assert tool.tool is not None
    assert tool.kb_query is not None
    kb = plan_turn(KNOWLEDGE_PROMPT, 8)
    assert kb.tool is None
    assert kb.kb_query is not None


def test_reference_credentials_document() -> None:
    from chatconform.reference.server import credentials_document

    class Keys:
        credentials = type("C", (), {k: "k" for k in ("api_key", "read_only_key",
                           "write_only_key", "other_tenant_key", "publishable_key")})  # fmt: skip

    class Tenants:
        agent_a, agent_b, unpublished_a = "a", "b", "u"

    plain = credentials_document("u", Keys(), Tenants(), Settings())  # type: ignore[arg-type]
    assert plain["deterministic"] is True
    assert (plain["toolPrompt"], plain["knowledgePrompt"]) == (TOOL_PROMPT, KNOWLEDGE_PROMPT)
    random = Settings(switches=Switches(variations=frozenset({"random-replies"})))
    doc = credentials_document("u", Keys(), Tenants(), random)  # type: ignore[arg-type]
    assert doc["deterministic"] is False


def test_random_replies_differ_and_keep_their_shape() -> None:
    plain = Settings()
    assert plain.reply_nonce() is None
    assert plan_turn("hi", 8, plain.reply_nonce()) == plan_turn("hi", 8)  # deterministic
    random = Settings(switches=Switches(variations=frozenset({"random-replies"})))
    a = plan_turn(KNOWLEDGE_PROMPT, 3, random.reply_nonce())
    b = plan_turn(KNOWLEDGE_PROMPT, 3, random.reply_nonce())
    assert a.reply != b.reply
    assert len(a.deltas) == len(b.deltas) == 3
    assert (a.kb_query, a.tool) == (b.kb_query, b.tool)  # only the text varies
    assert len(plan_turn("hi", 1, random.reply_nonce()).deltas) == 1
