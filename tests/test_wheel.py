"""A built wheel (not the checkout) gives a working `chatconform run`: suites and specs are inside."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_carries_suites_and_runs(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(tmp_path.glob("chatconform-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "chatconform/_bundled/suites/test_streaming.py",
        "chatconform/_bundled/suites/conftest.py",
        "chatconform/_bundled/specs/chat-api.yaml",
        "chatconform/_bundled/loadtests/locustfile.py",
        "chatconform/sdk_node.mjs",
    ):
        assert needed in names
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(site)}
    env = {k: v for k, v in env.items() if not k.startswith("FLOWYTE_")}
    where = subprocess.run(
        [sys.executable, "-c", "import chatconform.paths as p; print(p.suites_dir())"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert str(site) in where.stdout, where.stdout + where.stderr
    run = subprocess.run(
        [sys.executable, "-m", "chatconform.cli", "run", "--suite", "streaming",
         "--report-dir", str(tmp_path / "r")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert (tmp_path / "r" / "summary.json").exists()
