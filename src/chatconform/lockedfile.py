"""A small file that the processes of one run share (the agent-call ledger, the target's health):
read under a shared flock(2), changed under an exclusive one, so that a change is one
read-modify-write no other process interleaves with."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def read_shared(path: Path) -> str:
    """The file's text, read under a shared lock (FileNotFoundError when it is not there)."""
    with path.open("r", encoding="utf-8") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        return fh.read()


class Held:
    """The file under the exclusive lock: its text when the lock was taken, and a write."""

    def __init__(self, fh: IO[str]) -> None:
        self._fh = fh
        self.text = fh.read()

    def write(self, text: str) -> None:
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(text)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[Held]:
    """Hold the file (created if missing, mode 0600) under an exclusive lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "r+", encoding="utf-8") as fh:
            yield Held(fh)
    finally:
        os.close(fd)  # releases the lock
