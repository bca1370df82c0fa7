"""Bad use exits 2 with one line that says what is wrong; Ctrl-C exits 130 with a summary."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chatconform.embedded import EmbeddedServer

from harness import chatconform


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_one_line_usage_error(run: object, *phrases: str) -> None:
    assert run.code == 2, (run.stdout, run.stderr)
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["run", "--suite", "nope"], "unknown suite 'nope'"),
        (["run", "--base-url", "ftp://example", "--api-key", "k"], "not an http(s) URL"),
        (["run", "--base-url", "http://127.0.0.1:9/api/v1"], "no API key"),
        (["run", "--timeout", "0"], "--timeout must be a positive"),
        (["run", "--target-file", "/nonexistent/target.json"], "cannot read target file"),
        (["load", "--profile", "nope"], "nope"),
    ],
    ids=["unknown-suite", "bad-url", "no-key", "bad-timeout", "no-target-file", "unknown-profile"],
)
def test_bad_use(args: list[str], phrase: str, tmp_path: Path) -> None:
    assert_one_line_usage_error(chatconform(*args, report_dir=tmp_path), phrase)


def test_refused_connection(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/api/v1"
    run = chatconform("run", "--base-url", url, "--api-key", "k", report_dir=tmp_path)
    assert_one_line_usage_error(run, "cannot reach the target", url)


def test_wrong_key_said_once(tmp_path: Path, shared_reference: EmbeddedServer) -> None:
    creds = json.loads(shared_reference.credentials.read_text())
    run = chatconform(
        "run", "--base-url", creds["baseUrl"], "--api-key", "flowyte_sk_test_wrong",
        "--agent-id", creds["agentId"], report_dir=tmp_path,
    )  # fmt: skip
    assert_one_line_usage_error(run, "refused the API key")


def test_base_url_without_api_root(tmp_path: Path, shared_reference: EmbeddedServer) -> None:
    creds = json.loads(shared_reference.credentials.read_text())
    root = creds["baseUrl"].removesuffix("/api/v1")
    run = chatconform(
        "run", "--base-url", root, "--api-key", creds["apiKey"],
        "--agent-id", creds["agentId"], report_dir=tmp_path,
    )  # fmt: skip
    assert_one_line_usage_error(run, "every probe", "/api/v1")


def test_environment_and_target_file_configure_a_run(
    tmp_path: Path, shared_reference: EmbeddedServer
) -> None:
    creds = json.loads(shared_reference.credentials.read_text())
    env = {"FLOWYTE_BASE_URL": creds["baseUrl"], "FLOWYTE_API_KEY": creds["apiKey"]}
    env["FLOWYTE_AGENT_ID"] = creds["agentId"]
    run = chatconform("run", "--suite", "sessions", report_dir=tmp_path, env=env)
    assert run.code == 0, run.stdout[-2000:]
    assert run.summary["target"]["baseUrl"] == creds["baseUrl"]
    ses2 = next(r for r in run.summary["rules"] if r["id"] == "SES-2")
    # defaults-false is judged on every session; the draft clauses need an unpublished agent
    assert ses2["verdict"] == "PASS"
    assert ses2["reason"].startswith("1/3 clauses")
    clauses = {c["id"]: c for c in ses2["clauses"]}
    assert clauses["defaults-false"]["verdict"] == "PASS"
    for cid in ("draft", "no-published-version"):
        assert clauses[cid]["verdict"] == "SKIP"
        assert "FLOWYTE_UNPUBLISHED_AGENT_ID" in clauses[cid]["reason"]
    # relative paths, as a person types them: against the directory the command runs in
    shutil.copy(shared_reference.credentials, tmp_path / "target.json")
    full = chatconform(
        "run", "--suite", "sessions", "--target-file", "target.json", "--report-dir", "out/file",
        report_dir=tmp_path / "out" / "file", cwd=tmp_path,
    )  # fmt: skip
    assert full.code == 0, full.stdout[-2000:] + full.stderr[-2000:]
    assert "Reports: out/file" in " ".join(full.stdout.split()), full.stdout[-500:]
    assert full.verdicts()["SES-2"] == "PASS"
    assert {
        c["verdict"] for r in full.summary["rules"] if r["id"] == "SES-2" for c in r["clauses"]
    } == {"PASS"}


def _sigint_default() -> None:
    """In the child before exec: Ctrl-C at its default. An ignored signal is inherited across exec,
    and a pytest worker may have had SIGINT ignored by an earlier test's in-process code (a worker
    at -n 4 sent Ctrl-C to a run that never saw it); chatconform keeps an inherited SIG_IGN, as a
    Unix program should, so the test gives its child the disposition a terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a blocked mask is inherited too


def _interrupted_run(
    args: list[str], tmp_path: Path, running: Callable[[subprocess.Popen[str]], None]
) -> tuple[int, str, str]:
    """`chatconform run ARGS` against a slow reference, sent Ctrl-C once `running` returns:
    (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYTE_")}
    env["CHATCONFORM_REFERENCE_ARGS"] = "--ttft-ms 300 --itl-ms 100"  # a slow reference
    cmd = [sys.executable, "-m", "chatconform.cli", "run", *args, "--report-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_sigint_default)  # fmt: skip
    try:
        running(proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def test_ctrl_c_before_any_test_finished_exits_130(tmp_path: Path) -> None:
    """Ctrl-C while the first test still runs (the fuzz suite's, which reports only at its end):
    exit 130 and a line saying nothing finished, not "the suites did not run to the end" (2)."""

    def fuzz_started(proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 30
        while "started the reference" not in (proc.stdout.readline() if proc.stdout else ""):
            assert time.monotonic() < deadline
            assert proc.poll() is None
        time.sleep(3.0)  # the fuzz suite's first test is running: nothing has finished yet

    # an earlier run's outputs in the same directory: never shown as this run's
    stale = {"verdict": "PASS", "interrupted": False, "stale": True}
    (tmp_path / "summary.json").write_text(json.dumps(stale))
    (tmp_path / "summary.md").write_text("stale")
    (tmp_path / "load-summary.json").write_text("{}")  # a load run's: not the run's to remove
    code, out, err = _interrupted_run(["--suite", "fuzz", "--sdk", "none"], tmp_path, fuzz_started)
    assert (tmp_path / "load-summary.json").read_text() == "{}"
    assert (
        not (tmp_path / "summary.md").exists()
        or "stale" not in (tmp_path / "summary.md").read_text()
    )
    if code != 130:  # the whole of both, unabridged (an assert's message is cut short)
        pytest.fail(f"exit {code}, not 130\n--- stdout\n{out[-6000:]}\n--- stderr\n{err[-8000:]}")
    assert "did not run to the end" not in err
    # the interrupted fuzz test is sometimes recorded (a summary with interrupted: true), sometimes
    # not (no summary): either is said as such
    summary = tmp_path / "summary.json"
    if summary.exists():
        assert "stale" not in json.loads(summary.read_text())
        assert json.loads(summary.read_text())["interrupted"] is True
        assert "interrupted; the summary holds what finished" in err
    else:
        assert "interrupted before any test finished" in err
    assert "Traceback" not in err


def test_ctrl_c_writes_what_finished_and_exits_130(tmp_path: Path) -> None:
    def tests_running(proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("allure-results/*")) and time.monotonic() < deadline:
            time.sleep(0.1)  # wait until tests are running
        time.sleep(1.0)

    code, out, err = _interrupted_run([], tmp_path, tests_running)
    assert code == 130, (out[-2000:], err[-2000:])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert "Traceback" not in err


def test_a_swallowed_ctrl_c_is_raised_again_by_the_next_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hypothesis reports what an explicit example raised, KeyboardInterrupt included, and a run
    went on to the end, exit 0, after a Ctrl-C during the fuzz suite's coverage phase (2 of 4
    probes at 36 s into a run against a slow reference): once recorded, every request raises it."""
    from chatconform import interrupt
    from chatconform.client import Client
    from chatconform.target import Limits, Target

    client = Client(Target("http://127.0.0.1:9/api/v1", "k", "a", limits=Limits(1, 1)))
    monkeypatch.setattr(interrupt, "_at", [])
    interrupt.check()  # nothing recorded: no effect
    monkeypatch.setattr(interrupt, "_at", [0.0])
    with pytest.raises(KeyboardInterrupt):
        client.get_session("ses_x")
    assert client.log == []  # raised before anything was sent or recorded


SWALLOWS_THE_LAST_CTRL_C = """
import pytest

from chatconform import interrupt


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    interrupt.record()  # a Ctrl-C some library caught, after the last request that would re-raise it
"""


def test_a_ctrl_c_no_request_raised_again_still_ends_the_run_with_130(
    tmp_path: Path, shared_reference: EmbeddedServer
) -> None:
    """A Ctrl-C swallowed after the suites' last request (seen: one landing in the fuzz fixture's
    imports) ran to the end, PASS, exit 0: the recorded interrupt marks the summary and exits 130."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "swallowed_ctrl_c.py").write_text(SWALLOWS_THE_LAST_CTRL_C)
    creds = json.loads(shared_reference.credentials.read_text())
    env = {"FLOWYTE_BASE_URL": creds["baseUrl"], "FLOWYTE_API_KEY": creds["apiKey"]}
    env["FLOWYTE_AGENT_ID"] = creds["agentId"]
    env["PYTEST_PLUGINS"] = "swallowed_ctrl_c"
    env["PYTHONPATH"] = os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")])
    run = chatconform("run", "--suite", "sessions", report_dir=tmp_path / "out", env=env)
    assert run.code == 130, (run.stdout[-2000:], run.stderr[-2000:])
    assert run.summary["interrupted"] is True
    assert "interrupted; the summary holds what finished" in run.stderr
    assert "Traceback" not in run.stderr


def _ended(pid: int) -> bool:
    """No such process, or a zombie waiting for init to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_the_embedded_reference_ends_with_a_killed_parent() -> None:
    """A run killed outright (SIGKILL: a CI job's timeout, `kill -9`) left its embedded reference
    serving forever, reparented to init. The server watches the pipe its parent holds on its
    standard input: the parent's death closes it, and the server stops within seconds."""
    code = (
        "from chatconform.embedded import EmbeddedServer\n"
        "import time\n"
        "s = EmbeddedServer()\n"
        "s.start()\n"
        "print(s.proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        server = int(parent.stdout.readline())
        assert not _ended(server)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not _ended(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ended(server), f"the reference (pid {server}) outlived its killed parent by 10 s"
    finally:
        parent.kill()
        parent.wait(timeout=10)
