"""Paths as users give them: made absolute against the working directory once, printed relative."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from chatconform.paths import shown, user_path, user_paths


def test_user_path_is_absolute_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert user_path("reports/x") == tmp_path.resolve() / "reports" / "x"
    assert user_path("../y") == tmp_path.resolve().parent / "y"
    assert user_path("~/z") == Path.home() / "z"
    assert user_path(None) is None
    assert user_path("") is None
    assert user_path(str(tmp_path / "a")) == tmp_path / "a"  # absolute stays as given


def test_user_paths_rewrites_every_path_option_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    here = tmp_path.resolve()
    args = argparse.Namespace(
        dir="a", compare=["b", "c"], output=None, report_dir="r", target_file="t.json", users=3
    )
    user_paths(args)
    assert args.dir == str(here / "a")
    assert args.compare == [str(here / "b"), str(here / "c")]
    assert args.output is None
    assert args.users == 3
    assert (args.report_dir, args.target_file) == (str(here / "r"), str(here / "t.json"))
    before = vars(args).copy()
    monkeypatch.chdir(tmp_path.parent)
    user_paths(args)  # idempotent: a second call (another directory now) changes nothing
    assert vars(args) == before


def test_shown_is_relative_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    here = tmp_path.resolve()
    assert shown(here / "reports" / "x") == "reports/x"
    assert shown("reports/x") == "reports/x"
    assert shown(here) == "."
    assert shown(here.parent / "elsewhere") == str(here.parent / "elsewhere")
