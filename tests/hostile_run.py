"""One `chatconform run --strict` (all suites, DEFAULT bounds) against one hostile kind: a server
hostile in every answer, or a correct reference whose streams only are hostile (StreamProxy).
Shared by tests/test_hostile.py and benchmarks/bench_hostile.py."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chatconform.target import read_target_file

from harness import CliRun, chatconform, reference
from hostile_servers import STREAM_MODES, hostile, stream_proxy

# what the issue lists, as kinds: a whole-server mode, or "streams:<mode>" behind a correct server
KINDS = (
    "silent",  # never answers
    "head-stall",  # hangs before the headers end
    "stall",  # hangs mid-stream
    "endless",  # streams forever
    "drip",  # a byte a second
    "huge",  # a 200 MB frame
    "bad-utf8",
    "reset",  # resets mid-frame
    *(f"streams:{m}" for m in STREAM_MODES),
)
BOUND_S = 120.0  # issue 11: every kind ends in under 120 s with default options
KEY = "flowyte_sk_test_HOSTILEKIND0000000001"


@dataclass
class KindRun:
    kind: str
    run: CliRun
    seconds: float

    def counts(self) -> dict[str, int]:
        return self.run.summary["counts"]


@contextlib.contextmanager
def target_of(kind: str) -> Iterator[tuple[str, list[str], dict[str, str]]]:
    """(base URL, extra CLI args, env) of a running hostile target of this kind."""
    if kind.startswith("streams:"):
        with reference() as ref:
            upstream = read_target_file(ref.credentials)["base_url"]
            with stream_proxy(kind.split(":", 1)[1], upstream) as proxy:
                yield proxy.base_url, ["--target-file", str(ref.credentials)], {}
        return
    with hostile(kind) as server:
        yield server.base_url, ["--agent-id", "agent-x"], {"FLOWYTE_API_KEY": KEY}


def run_kind(
    kind: str, report_dir: Path, extra: tuple[str, ...] = (), default_concurrency: bool = True
) -> KindRun:
    """One run against `kind`, with the default options unless `extra` says otherwise (the
    default concurrency included: 4 xdist workers for this remote target, unless
    `default_concurrency` is False, the self-tests' one at a time)."""
    with target_of(kind) as (base_url, args, env):
        started = time.monotonic()
        run = chatconform(
            "run", "--strict", "--base-url", base_url, *args, *extra,
            report_dir=report_dir, env=env, timeout=BOUND_S + 120,
            default_concurrency=default_concurrency,
        )  # fmt: skip
        return KindRun(kind, run, time.monotonic() - started)
