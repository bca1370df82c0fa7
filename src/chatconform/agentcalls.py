"""The agent bill: requests that reached the target's agent, the tokens it reported, and their cap.

A request invokes the agent when it is a POST to `/chat/sessions/{id}/messages` or `/chat/completions`
and the target accepted it (2xx): a request the target rejects (401, 400, 404, ...) is answered before
any agent runs and costs nothing. The tally is kept per suite (the test file's family) and, when the
run has a cap (`--max-agent-calls N`), a request that might invoke the agent is sent only while a call
is left: each holds one call while in flight and gives it back unless it was accepted, so the cap is
never exceeded, however many requests run at once.

The ledger lives in a small file shared by every process of the run (pytest-xdist workers), locked
with flock(2) for each update; without a file it is kept in memory.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chatconform import lockedfile
from chatconform.record import Exchange

#: Agent calls a run may make unless told otherwise, sized for a CI gate: a strict run of every suite
#: against the reference makes 31 through the scenario suites (which run first and judge every rule)
#: and the fuzz suite spends what is left; `--max-agent-calls` raises or lowers it.
DEFAULT_MAX_AGENT_CALLS = 60


def parse_cap(value: str | int | None) -> int | None:
    """The --max-agent-calls value: a count >= 0, None for 'none' (no cap), the default when not
    given. A bad value is a ValueError whose message the command line shows as is."""
    if value is None:
        return DEFAULT_MAX_AGENT_CALLS
    if isinstance(value, str) and value.strip().lower() in ("none", "unlimited"):
        return None
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise ValueError(f"--max-agent-calls must be a count >= 0 or 'none', not {value!r}")
    return n


OTHER = "other"  # requests made outside any suite test
FIRST, LATE = "firstDone", "lateDone"  # tests finished, of the scenario suites and of late ones
_MESSAGES = re.compile(r"/chat/sessions/[^/]+/messages$")


def invokes_agent(method: str, url: str) -> bool:
    """Whether a request of this shape runs the target's agent when the target accepts it."""
    if method.upper() != "POST":
        return False
    path = urlsplit(url).path.rstrip("/")
    return path.endswith("/chat/completions") or bool(_MESSAGES.search(path))


def reported_tokens(ex: Exchange) -> int | None:
    """The tokens the target reported for this exchange (`usage` of a completion, plain or in a
    streamed chunk, or of a message reply), or None when it reported none."""
    found: int | None = None
    docs: list[Any] = []
    if ex.stream is not None:
        for event in ex.stream.events:
            if "usage" in event.data:
                with contextlib.suppress(ValueError):
                    docs.append(json.loads(event.data))
    else:
        docs.append(ex.json())
    for doc in docs:
        for holder in (doc, doc.get("data") if isinstance(doc, dict) else None):
            n = _usage_total(holder.get("usage")) if isinstance(holder, dict) else None
            if n is not None:
                found = n  # a stream's last usage is its total
    return found


def _usage_total(usage: Any) -> int | None:
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
        return total
    parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    if all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in parts):
        return int(sum(parts))  # type: ignore[arg-type]
    return None


def _empty() -> dict[str, Any]:
    return {"calls": 0, "tokens": 0, "withUsage": 0, "refused": 0, "inFlight": 0, "bySuite": {}}


class AgentCalls:
    """The run's tally of agent calls and tokens per suite, and its cap (None: no cap)."""

    def __init__(self, cap: int | None, path: Path | None = None) -> None:
        self.cap = cap
        self.path = path
        self.suite = OTHER  # the suite of the test running in this process (set by the plugin)
        self.refused_here = 0  # requests this process did not send for the cap
        # the fuzz suite spends what the scenario suites left: while a test of a late suite runs
        # (`late`), a claim waits until the `first_tests` scenario tests have all finished
        self.late = False
        self.first_tests = 0
        self.deadline = float("inf")  # the run's deadline (time.monotonic()) bounds that wait
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._memory = _empty()
        if path is not None and not path.exists():
            path.write_text(json.dumps(_empty()), encoding="utf-8")

    @property
    def limit_text(self) -> str:
        return f"agent-call budget spent (--max-agent-calls {self.cap})"

    # -- the ledger ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _ledger(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            if self.path is None:
                yield self._memory
                return
            with lockedfile.exclusive(self.path) as held:
                data = json.loads(held.text) if held.text.strip() else _empty()
                yield data
                held.write(json.dumps(data))

    def _update(self, fn: Callable[[dict[str, Any]], Any]) -> Any:
        with self._ledger() as data:
            return fn(data)

    def _suite(self, data: dict[str, Any], suite: str) -> dict[str, int]:
        entry: dict[str, int] = data["bySuite"].setdefault(
            suite, {"calls": 0, "tokens": 0, "refused": 0}
        )
        return entry

    # -- per request --------------------------------------------------------------------
    def claim(self) -> str | None:
        """Hold one call for a request that may invoke the agent; the reason it must not be sent
        when none is left (the request is then counted as refused). A late suite's claim first
        waits for the scenario suites to finish (in any process of the run)."""
        suite = self.suite
        if self.late:
            self.wait_for(FIRST, self.first_tests, self.deadline)

        def claim(data: dict[str, Any]) -> str | None:
            if self.cap is not None and data["calls"] + data["inFlight"] >= self.cap:
                data["refused"] += 1
                self._suite(data, suite)["refused"] += 1
                self.refused_here += 1
                return f"not sent: {self.limit_text}"
            data["inFlight"] += 1
            return None

        reason: str | None = self._update(claim)
        return reason

    def settle(self, ex: Exchange) -> None:
        """Give back the call held for `ex`; count it (and its tokens) when the target accepted it."""
        suite = self.suite
        accepted = ex.status is not None and 200 <= ex.status < 300
        tokens = reported_tokens(ex) if accepted else None

        def settle(data: dict[str, Any]) -> None:
            data["inFlight"] = max(0, data["inFlight"] - 1)
            if accepted:
                entry = self._suite(data, suite)
                data["calls"] += 1
                entry["calls"] += 1
                if tokens is not None:
                    data["tokens"] += tokens
                    data["withUsage"] += 1
                    entry["tokens"] += tokens

        self._update(settle)

    def refuse(self) -> str:
        """Count a request that may invoke the agent and that its sender keeps back for the cap
        (the fuzz suite, which shares what is left between its tests); the reason, as claim's."""

        def refuse(data: dict[str, Any]) -> None:
            data["refused"] += 1
            self._suite(data, self.suite)["refused"] += 1
            self.refused_here += 1

        self._update(refuse)
        return f"not sent: {self.limit_text}"

    # -- order between suites -----------------------------------------------------------
    def ready(self) -> None:
        """For a late suite: wait until the scenario suites finished, so that what is left (and
        how a late test shares it out) no longer changes under it."""
        if self.late:
            self.wait_for(FIRST, self.first_tests, self.deadline)

    def done(self, what: str) -> None:
        """One more test of a kind finished (FIRST: a scenario test; LATE: a late suite's), in any
        process of the run."""
        self._update(lambda data: data.__setitem__(what, data.get(what, 0) + 1))

    def wait_for(self, what: str, n: int, deadline: float, poll_s: float = 0.25) -> bool:
        """Wait until `n` tests of a kind finished, at most until `deadline` (time.monotonic());
        False when the deadline passed first."""
        if self._seen.get(what, 0) >= n:
            return True
        while (seen := self.snapshot().get(what, 0)) < n:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        self._seen[what] = seen
        return True

    # -- reading ------------------------------------------------------------------------
    def left(self) -> int | None:
        """Agent calls still available to claim (None: no cap). For the fuzz suite, which sizes
        its agent-invoking cases to what the scenario suites left."""
        if self.cap is None:
            return None
        data = self.snapshot()
        return max(0, self.cap - data["calls"] - data["inFlight"])

    def spent(self) -> int:
        """Agent calls made so far (accepted requests), in every process of the run."""
        return int(self.snapshot()["calls"])

    def snapshot(self) -> dict[str, Any]:
        """A copy of the ledger, read under a shared lock (nothing written back)."""
        with self._lock:
            if self.path is None:
                return json.loads(json.dumps(self._memory))
            text = lockedfile.read_shared(self.path)
        return json.loads(text) if text.strip() else _empty()

    def to_json(self) -> dict[str, Any]:
        """summary.json's `agent` object."""
        data = self.snapshot()
        return {
            "calls": data["calls"],
            "tokens": data["tokens"],
            "callsWithUsage": data["withUsage"],
            "refused": data["refused"],
            "maxCalls": self.cap,
            "bySuite": dict(sorted(data["bySuite"].items())),
        }


def bill_line(agent: dict[str, Any]) -> str:
    """One line of the agent bill: calls, tokens, per suite, what the cap refused."""
    cap = agent.get("maxCalls")
    tokens = (
        f"{agent['tokens']} tokens reported"
        if agent.get("callsWithUsage")
        else "no tokens reported"
    )
    per = ", ".join(f"{s} {v['calls']}" for s, v in agent.get("bySuite", {}).items() if v["calls"])
    text = f"agent calls: {agent['calls']}" + (f" of {cap}" if cap is not None else " (no cap)")
    text += f" ({per})" if per else ""
    text += f"; {tokens}"
    if agent.get("refused"):
        text += f"; {agent['refused']} requests not sent: agent-call budget spent (--max-agent-calls {cap})"
    return text
