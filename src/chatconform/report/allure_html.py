"""Build the Allure HTML report from a run's allure-results with Allure 3 (the npm package `allure`).

The `allure` CLI is looked for, in order: `$CHATCONFORM_ALLURE` (a path to an `allure` executable),
the chatconform cache (`$CHATCONFORM_ALLURE_HOME`, default `~/.cache/chatconform/allure`, where
`npm install --prefix <cache> allure@3` puts `node_modules/.bin/allure`), then `allure` on PATH when
it is Allure 3. When none is found and Node/npm are present, it is installed into the cache (one
`npm install`, needs the npm registry); without Node the message says how to get it.

The report is generated with `allure generate <results> -o <out> --config <allurerc.json>`; the
config carries chatconform's categories (Allure 3 reads categories from its config; categories.json
in the results directory serves Allure 2) and asks for a single-file report, which opens from disk
and travels as one CI artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from chatconform.report.allure_results import CATEGORIES
from chatconform.report.util import ReportError

ALLURE_NPM_SPEC = "allure@3"
INSTALL_TIMEOUT_S = 300
GENERATE_TIMEOUT_S = 300


def cache_dir() -> Path:
    env = os.environ.get("CHATCONFORM_ALLURE_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chatconform" / "allure"


def install_command(prefix: Path | None = None) -> str:
    return f"npm install --prefix {prefix or cache_dir()} {ALLURE_NPM_SPEC}"


def node_missing_message() -> str:
    return (
        "the Allure HTML report needs Node.js (>= 20) and the npm package `allure` (Allure 3), and "
        "`node` was not found. Install Node.js (e.g. `apt-get install -y nodejs npm`, or from "
        f"https://nodejs.org), then run `{install_command()}` (or let `chatconform report DIR "
        "--allure` do it). The Allure results themselves are in DIR/allure-results."
    )


def _is_allure3(exe: str) -> bool:
    try:
        done = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.strip().startswith("3.")


def find_allure() -> str | None:
    """An Allure 3 CLI already available, or None."""
    env = os.environ.get("CHATCONFORM_ALLURE")
    if env:
        return env
    cached = cache_dir() / "node_modules" / ".bin" / "allure"
    if cached.exists():
        return str(cached)
    on_path = shutil.which("allure")
    if on_path and _is_allure3(on_path):
        return on_path
    return None


def ensure_allure(install: bool = True) -> str:
    """The Allure 3 CLI, installed into the cache with npm when missing (ReportError if impossible)."""
    found = find_allure()
    if found:
        return found
    if shutil.which("node") is None:
        raise ReportError(node_missing_message())
    npm = shutil.which("npm")
    if npm is None:
        raise ReportError(
            "Node.js is present but npm is not: install npm, then run " + install_command()
        )
    if not install:
        raise ReportError(f"Allure 3 is not installed: run `{install_command()}`")
    prefix = cache_dir()
    prefix.mkdir(parents=True, exist_ok=True)
    print(f"chatconform: installing Allure 3 into {prefix} (npm install {ALLURE_NPM_SPEC}) ...")
    try:
        done = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", ALLURE_NPM_SPEC],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ReportError(
            f"`{install_command()}` took over {INSTALL_TIMEOUT_S} s; run it by hand"
        ) from None
    exe = prefix / "node_modules" / ".bin" / "allure"
    if done.returncode != 0 or not exe.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ReportError(
            f"`{install_command()}` failed (exit {done.returncode}): {' / '.join(tail)}"
        )
    return str(exe)


@dataclass
class AllureBuild:
    output: Path
    index: Path
    command: list[str]


def allure_config(name: str) -> dict[str, object]:
    return {
        "name": name,
        "categories": CATEGORIES,
        "plugins": {
            "awesome": {
                "options": {
                    "singleFile": True,
                    "reportName": name,
                    # the tree reads by rule: family > rule > clause (Allure's behaviour labels)
                    "groupBy": ["epic", "feature", "story"],
                }
            }
        },
    }


def build_allure_html(
    results: Path, output: Path, name: str = "chatconform", install: bool = True
) -> AllureBuild:
    """`allure generate results -o output` with chatconform's categories; ReportError on failure.

    Allure runs in a temporary directory (so no stray allurerc of the caller's is read): both paths
    are made absolute against the caller's working directory first."""
    results, output = Path(os.path.abspath(results)), Path(os.path.abspath(output))
    if not results.is_dir() or not any(results.glob("*-result.json")):
        raise ReportError(
            f"no Allure results in {results}: runs write them with `--alluredir` (chatconform run "
            "does this for every run)"
        )
    exe = ensure_allure(install=install)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chatconform-allure-") as tmp:
        cfg = Path(tmp) / "allurerc.json"
        cfg.write_text(json.dumps(allure_config(name), indent=2), encoding="utf-8")
        cmd = [exe, "generate", str(results), "-o", str(output), "--config", str(cfg)]
        try:
            done = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=GENERATE_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            raise ReportError(f"allure generate took over {GENERATE_TIMEOUT_S} s") from None
        except OSError as exc:
            raise ReportError(f"cannot run {exe}: {exc}") from None
    index = output / "index.html"
    if done.returncode != 0 or not index.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ReportError(f"allure generate failed (exit {done.returncode}): {' / '.join(tail)}")
    return AllureBuild(output=output, index=index, command=cmd)
