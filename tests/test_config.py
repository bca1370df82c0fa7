"""The project config file (chatconform.config): found in the cwd or given, merged under the
command line and the FLOWYTE_* environment, secrets only by variable name, wrong keys exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatconform import config
from chatconform.cli import build_parser, main

GOOD = """\
[target]
base_url = "http://127.0.0.1:9/api/v1"
agent_id = "agent-from-file"
api_key_env = "CC_TEST_KEY_VAR"

[run]
suites = ["streaming", "errors"]
strict = true
expectations = "known.yaml"

[bounds]
stream_timeout = 12

[verify]
load_profile = "gate"

[load.profiles.gate]
base = "smoke"
run_time = "5s"
max_error_rate = 0.05
"""


def merged_run(tmp_path: Path, argv: list[str]) -> tuple[object, dict[str, config.Setting]]:
    parser = build_parser()
    args = parser.parse_args(["run", *argv])
    cfg = config.load(getattr(args, "config", None), cwd=tmp_path)
    return args, config.apply(args, cfg, config.explicit_dests(parser, ["run", *argv]))


def test_file_in_the_cwd_fills_what_the_command_line_does_not_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "chatconform.toml").write_text(GOOD)
    monkeypatch.setenv("CC_TEST_KEY_VAR", "flowyte_sk_test_secret_value")
    monkeypatch.delenv("FLOWYTE_AGENT_ID", raising=False)
    monkeypatch.delenv("FLOWYTE_API_KEY", raising=False)
    args, merged = merged_run(tmp_path, ["--stream-timeout", "7"])
    assert args.suite == ["streaming", "errors"]  # type: ignore[attr-defined]
    assert args.strict is True  # type: ignore[attr-defined]
    assert args.stream_timeout == 7.0  # type: ignore[attr-defined]  # the command line wins
    assert merged["stream_timeout"].source == "command line"
    assert args.api_key == "flowyte_sk_test_secret_value"  # type: ignore[attr-defined]
    assert args.expectations == str(tmp_path / "known.yaml")  # type: ignore[attr-defined]
    assert merged["suite"].source == f"{tmp_path / 'chatconform.toml'}:7"
    assert merged["timeout"].source == "default"
    shown = "\n".join(config.show_lines(merged, config.load(None, cwd=tmp_path)))
    assert "flowyte_sk_test_secret_value" not in shown
    assert "$CC_TEST_KEY_VAR (set)" in shown


def test_the_environment_beats_the_file_for_target_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "chatconform.toml").write_text(GOOD)
    monkeypatch.setenv("FLOWYTE_AGENT_ID", "agent-from-env")
    args, merged = merged_run(tmp_path, [])
    assert args.agent_id == "agent-from-env"  # type: ignore[attr-defined]
    assert merged["agent_id"].source == "env FLOWYTE_AGENT_ID"


def test_pyproject_tool_table_works_too(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.chatconform.run]\nstrict = true\n'
    )
    cfg = config.load(None, cwd=tmp_path)
    assert cfg.settings["strict"].value is True
    assert cfg.settings["strict"].source.endswith("pyproject.toml:5")


def test_no_file_is_no_config(tmp_path: Path) -> None:
    assert config.load(None, cwd=tmp_path).path is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[run]\nstrict = true\nstrictt = 1\n",
            ":3: unknown key 'strictt' in [run]; valid: suites",
        ),
        ("[bounds]\n\ntimeout = 'soon'\n", ":3: bounds.timeout must be int or float"),
        ('[target]\napi_key = "flowyte_sk_x"\n', ":2: keys are never written in the config file"),
        ("[runn]\n", ":1: unknown table 'runn'"),
        (
            "[load.profiles.g]\nusers = 2\nuserz = 3\n",
            ":3: unknown key 'userz' in [load.profiles.g]",
        ),
        ("[run]\nsuites = 'streaming'\n", "must be list of strings"),
        ("x = [\n", "is not valid TOML"),
    ],
)
def test_a_wrong_file_is_a_usage_error_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    assert main(["config", "show", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert str(p) in err
    assert "Traceback" not in err
    assert "flowyte_sk_x" not in err


def test_config_show_prints_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "c.toml"
    p.write_text(GOOD)
    monkeypatch.delenv("CC_TEST_KEY_VAR", raising=False)
    assert main(["config", "show", "--config", str(p)]) == 0
    out = capsys.readouterr().out
    assert f"strict                = True    # {p}:8" in out
    assert "$CC_TEST_KEY_VAR (not set)" in out
    assert "load profile 'gate'" in out


def test_run_reads_its_bounds_from_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[bounds]\nrun_timeout = -1\n")
    assert main(["run", "--config", str(p), "--base-url", "http://127.0.0.1:9/api/v1"]) == 2
    assert "--run-timeout must be a positive number" in capsys.readouterr().err
