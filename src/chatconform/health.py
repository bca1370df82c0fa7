"""The run's stream health, shared by every process of the run (pytest-xdist workers).

A small JSON file in the run's shared directory, created by the first stream that did not end in
time: what each such stream did (`strikes`) and when the one short window that later streams share
closes (`windowEnd`, wall-clock seconds: every process of the run is on this host). Updated under an
exclusive flock(2), read under a shared one; while no stream has failed, a read is one stat call.
Without it, each worker would learn alone and pay the full stream deadline once itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path


class SharedHealth:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> tuple[list[str], float | None]:
        """The strikes so far in the run and the wall time the shared window closes (None: no
        stream has failed yet)."""
        try:
            with self.path.open("r", encoding="utf-8") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
                text = fh.read()
        except FileNotFoundError:
            return [], None
        return _parse(text)

    def strike(self, what: str, window_s: float, needed: int = 1) -> tuple[list[str], float | None]:
        """Add one stream that did not end; the window opens with the run's `needed`-th strike,
        in whichever process. Returns the strikes and the window's close, as `read`."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "r+", encoding="utf-8") as fh:
                strikes, end = _parse(fh.read())
                strikes.append(what)
                if end is None and len(strikes) >= needed:
                    end = time.time() + window_s
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps({"strikes": strikes, "windowEnd": end}))
        finally:
            os.close(fd)  # releases the lock
        return strikes, end


def _parse(text: str) -> tuple[list[str], float | None]:
    data: object = {}
    with contextlib.suppress(ValueError):
        data = json.loads(text) if text.strip() else {}
    if not isinstance(data, dict):
        return [], None
    strikes = [str(s) for s in data.get("strikes", []) if isinstance(s, str)]
    end = data.get("windowEnd")
    return strikes, float(end) if isinstance(end, int | float) else None
