"""Start the embedded reference server in a child process and hand back its Target.

The harness talks to it over loopback like any other target: nothing is shared but the wire.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chatconform.target import Limits, Target, read_target_file

START_TIMEOUT_S = 20.0


class EmbeddedError(RuntimeError):
    """The reference server did not come up."""


class EmbeddedServer:
    """A reference server process; use as a context manager or call start()/stop()."""

    def __init__(self, args: list[str] | None = None, limits: Limits | None = None) -> None:
        self.args = list(args or [])
        self.limits = limits or Limits()
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="chatconform-ref-")
        self.credentials = Path(self._dir.name) / "credentials.json"
        self.log = Path(self._dir.name) / "server.log"

    def start(self) -> Target:
        cmd = [sys.executable, "-m", "chatconform.reference", "--port", "0"]
        cmd += ["--credentials-out", str(self.credentials), "--exit-on-stdin-close", *self.args]
        with self.log.open("wb") as log:
            # its standard input is a pipe only this process holds: when this process ends, even
            # killed outright, the server reads its end and stops (no orphan left on the port)
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.credentials.exists():
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                raise EmbeddedError(
                    f"the embedded reference server exited with {self.proc.returncode}: "
                    + " | ".join(tail)
                )
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedError(
                    f"the embedded reference server did not start in {START_TIMEOUT_S:g} s"
                )
            time.sleep(0.02)
        values = read_target_file(self.credentials)
        return Target(**values, limits=self.limits, embedded=True)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._dir.cleanup()

    def __enter__(self) -> Target:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reference_args_from_env() -> list[str]:
    """Extra reference-server arguments for runs that start it implicitly (tests, CLI)."""
    raw = os.environ.get("CHATCONFORM_REFERENCE_ARGS", "")
    return raw.split() if raw else []
