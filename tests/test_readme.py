"""The README, verbatim, is a self-test: its walk-through block runs line by line in a copy of the
repository, from the copy's top directory, with the relative paths the README shows.

The block sits between `<!-- walk-through: begin` and `<!-- walk-through: end -->` in README.md.
Each line runs through `bash -c` exactly as written, with one substitution a person makes by hand:
`reports/<timestamp>` becomes the directory the first run printed (`Reports: reports/...`). A line
ending in `&` runs in the background (as in a shell), `kill %N` stops the N-th of those, and a
trailing `# exit N` comment is the exit code the README promises (default 0). `.venv` in the copy is
a link to the running environment's, so `.venv/bin/chatconform` is the command the README names,
without running setup again. Every line is bounded in time; the whole walk takes a few minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN, END = "<!-- walk-through: begin", "<!-- walk-through: end -->"
LINE_TIMEOUT_S = 600  # the strict run takes 1-2 min on 2 idle cores; a shared machine is slower
PLACEHOLDER = "reports/<timestamp>"
SKIP_COPY = {".venv", ".git", "reports", "node_modules", ".ruff_cache", "__pycache__", "build"}


def walk_through(text: str) -> list[str]:
    """The commands of the README's walk-through block, in order (blank lines dropped)."""
    start, end = text.find(BEGIN), text.find(END)
    assert 0 <= start < end, f"README.md has no {BEGIN!r} ... {END!r} block"
    block = text[start:end]
    fence = re.search(r"```sh\n(.*?)```", block, re.S)
    assert fence, "the walk-through block holds no ```sh fence"
    return [ln.strip() for ln in fence.group(1).splitlines() if ln.strip()]


def main_command(text: str) -> str:
    """The README's main command (the first fenced line that runs `chatconform run`), without the
    setup step in front of it: `./scripts/setup && X` -> X."""
    first = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first, "README.md has no ```sh block"
    line = next(ln for ln in first.group(1).splitlines() if "chatconform run" in ln)
    return line.split("&&")[-1].strip()


def expected_exit(line: str) -> int:
    m = re.search(r"#\s*exit (\d+)", line)
    return int(m.group(1)) if m else 0


def copy_repository(dest: Path) -> Path:
    """The tracked and untracked-but-not-ignored files (what a clone plus local edits holds), or a
    copy without the local environment when git is not there."""
    repo = dest / "repo"
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, timeout=60, check=True,
        ).stdout.decode().split("\0")  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        shutil.copytree(ROOT, repo, ignore=lambda d, names: [n for n in names if n in SKIP_COPY])
        return repo
    for name in filter(None, listed):
        src = ROOT / name
        if not src.is_file():
            continue  # deleted in the worktree, not yet committed
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, repo / name)
    return repo


@dataclass
class Step:
    line: str
    code: int
    out: str
    err: str
    seconds: float


def _env() -> dict[str, str]:
    drop = ("FLOWYTE_", "CHATCONFORM_REFERENCE_ARGS", "GITHUB_STEP_SUMMARY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["COLUMNS"] = "200"  # rich wraps a summary line at the terminal width
    return env


def run_line(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`bash -c line` in its own process group, so a timeout stops it and every child it started
    (the embedded reference of a run, Locust's workers) rather than leaving them behind."""
    proc = subprocess.Popen(
        ["bash", "-c", line], cwd=cwd, env=env, text=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=LINE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=15)
        pytest.fail(
            f"README line {line!r} took over {LINE_TIMEOUT_S} s\n{out[-1500:]}{err[-1500:]}"
        )
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_main_command_is_the_walk_throughs_first() -> None:
    text = README.read_text(encoding="utf-8")
    first = walk_through(text)[0].partition(" #")[0].strip()
    assert first == main_command(text) == ".venv/bin/chatconform run --strict"


def test_readme_walk_through_verbatim(tmp_path: Path) -> None:
    lines = walk_through(README.read_text(encoding="utf-8"))
    repo = copy_repository(tmp_path)
    venv = Path(sys.prefix)
    assert (venv / "bin" / "chatconform").exists(), f"no chatconform in {venv}: run ./scripts/setup"
    (repo / ".venv").symlink_to(venv, target_is_directory=True)
    env = _env()
    jobs: list[subprocess.Popen[str]] = []
    steps: list[Step] = []
    printed_dir: str | None = None
    try:
        for raw in lines:
            line = raw.partition(" #")[0].strip()  # the command; a comment may say its exit code
            if PLACEHOLDER in line:
                assert printed_dir, f"{raw!r} needs the directory an earlier run printed"
                line = line.replace(PLACEHOLDER, printed_dir)
            kill = re.fullmatch(r"kill %(\d+)", line)
            if kill:
                job = jobs[int(kill.group(1)) - 1]
                os.killpg(job.pid, signal.SIGTERM)
                job.wait(timeout=30)
                continue
            if line.endswith("&"):
                job = subprocess.Popen(
                    ["bash", "-c", line[:-1]], cwd=repo, env=env, text=True,
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
                jobs.append(job)
                continue
            started = time.monotonic()
            done = run_line(line, repo, env)
            steps.append(Step(raw, done.returncode, done.stdout, done.stderr, 0.0))
            steps[-1].seconds = time.monotonic() - started
            print(f"{steps[-1].seconds:6.1f} s  exit {done.returncode}  {line}")
            assert done.returncode == expected_exit(raw), (
                f"README line {raw!r} exited {done.returncode}, the README says "
                f"{expected_exit(raw)}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
            )
            m = re.search(r"Reports:\s+(\S+)", done.stdout)
            if m and printed_dir is None:
                printed_dir = m.group(1)
    finally:
        for job in jobs:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait(timeout=10)

    # what the README says the commands leave behind, at the paths they printed (relative ones)
    assert printed_dir is not None
    assert printed_dir.startswith("reports/"), printed_dir
    run_dir = repo / printed_dir
    assert json.loads((run_dir / "summary.json").read_text())["strict"] is True
    allure = next(s for s in steps if "--allure" in s.line)
    shown = re.search(r"Allure report:\s+(\S+)", allure.out)
    assert shown, allure.out
    assert not Path(shown.group(1)).is_absolute(), shown.group(1)
    assert (repo / shown.group(1)).stat().st_size > 100_000
    assert (run_dir / "allure-report" / "index.html").is_file()
    faulty = json.loads((repo / "reports/faulty/summary.json").read_text())
    assert {r["id"]: r["verdict"] for r in faulty["rules"]}["OAI-4"] == "FAIL"
    assert not (repo / "faulty.json").stat().st_mode & 0o077, "credentials file not private"
    matrix = json.loads((repo / "reports/matrix/matrix.json").read_text())
    assert "OAI-4" in matrix["differing"]
    compare = next(s for s in steps if "--compare" in s.line)
    assert "reports/matrix/matrix.html" in compare.out, compare.out
    load = json.loads((repo / "reports/load/load-summary.json").read_text())
    assert load, "the load run wrote an empty summary"
    assert (repo / "reports/load/summary.html").is_file()
    load_step = next(s for s in steps if "chatconform load" in s.line)
    assert "reports: reports/load" in load_step.out, load_step.out


def test_a_printed_relative_path_is_pasted_into_the_next_command(tmp_path: Path) -> None:
    """The issue's case, fast: `report DIR --allure` with a relative DIR, run from its parent.
    Allure itself runs in a temporary directory; the relative path must still be found."""
    from chatconform.report.allure_html import find_allure

    if shutil.which("node") is None or find_allure() is None:
        pytest.skip("Node.js or Allure 3 not installed (scripts/setup installs both)")
    results = tmp_path / "reports" / "r1" / "allure-results"
    results.mkdir(parents=True)
    result = {
        "uuid": "0b5a3c4e-0000-4000-8000-000000000001", "historyId": "h1", "name": "t",
        "fullName": "suites.test_x#t", "status": "passed", "start": 1, "stop": 2, "labels": [],
    }  # fmt: skip
    (results / f"{result['uuid']}-result.json").write_text(json.dumps(result))
    (results.parent / "summary.json").write_text(
        json.dumps({"verdict": "PASS", "strict": True, "target": {"baseUrl": "x"}, "rules": []})
    )
    done = subprocess.run(
        [sys.executable, "-m", "chatconform.cli", "report", "reports/r1", "--allure"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=LINE_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Allure report: reports/r1/allure-report/index.html" in done.stdout, done.stdout
    assert (tmp_path / "reports/r1/allure-report/index.html").is_file()
