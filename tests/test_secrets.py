"""Secret hygiene: every command, run with the reference's freshly generated keys as canaries,
leaves no key in anything it prints or writes (reports, JUnit, Allure, Schemathesis, load JSONL)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from harness import CliRun, chatconform, reference

SECRET_FIELDS = ("apiKey", "readOnlyKey", "writeOnlyKey", "otherTenantKey", "publishableKey")


def scan(root: Path, outputs: list[str], canaries: list[str]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {c[:14]}…" for c in canaries if c.encode() in data]
    for n, text in enumerate(outputs):
        hits += [f"output {n}: {c[:14]}…" for c in canaries if c in text]
    return hits


def test_no_key_in_any_output_of_any_command(tmp_path: Path) -> None:
    runs: list[CliRun] = []
    outputs: list[str] = []
    # a faulty target, so failures carry full evidence (requests with every kind of key)
    with reference("--fault", "cross-tenant-read") as server:
        creds = json.loads(server.credentials.read_text())
        canaries = [creds[k] for k in SECRET_FIELDS]
        assert stat.S_IMODE(server.credentials.stat().st_mode) == 0o600
        runs.append(
            chatconform(
                "run",
                "--strict",
                "--target-file",
                str(server.credentials),
                "--max-examples",
                "2",
                report_dir=tmp_path / "run",
            )
        )
        runs.append(
            chatconform(
                "run",
                "-v",
                "--base-url",
                creds["baseUrl"],
                "--api-key",
                creds["apiKey"],
                "--agent-id",
                creds["agentId"],
                "--suite",
                "completions",
                "--suite",
                "auth",
                report_dir=tmp_path / "flags",
            )
        )
        runs.append(
            chatconform(
                "load",
                "--target-file",
                str(server.credentials),
                "--profile",
                "smoke",
                "--run-time",
                "3s",
                "--report-dir",
                str(tmp_path / "load"),
                report_dir=tmp_path / "load",
            )
        )
        outputs.append(server.log.read_text(errors="replace"))  # what `serve` printed
    runs.append(chatconform("report", str(tmp_path / "run"), report_dir=tmp_path / "run"))
    runs.append(
        chatconform(
            "report",
            str(tmp_path / "run"),
            "--compare",
            str(tmp_path / "run"),
            str(tmp_path / "flags"),
            "-o",
            str(tmp_path / "matrix"),
            report_dir=tmp_path,
        )
    )
    for run in runs:
        outputs += [run.stdout, run.stderr]
    assert [r.code for r in runs] == [1, 0, 0, 0, 0], [(r.code, r.stderr[-500:]) for r in runs]
    assert (tmp_path / "run" / "allure-results").is_dir()
    assert (tmp_path / "load" / "load-summary.json").is_file()
    assert scan(tmp_path, outputs, canaries) == []


def test_the_scan_finds_a_planted_key(tmp_path: Path) -> None:
    canary = "flowyte_sk_test_planted"
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "x.json").write_text(f'{{"k": "{canary}"}}')
    assert len(scan(tmp_path, [f"key={canary}"], [canary])) == 2
