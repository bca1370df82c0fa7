"""The server's own send times (``--calibration``): when each content delta was handed to the
ASGI server, so a load benchmark can tell the client's error from the server's delay.

Per streamed completion: the server-side TTFT (first content delta handed over − request receipt,
the same instant the injected ``--ttft-ms`` counts from), every gap between consecutive content
deltas, and each delta's lateness (handed over − its due time). Bounded: at most ``cap`` samples
per series are kept (counts stay exact), so a long run cannot grow the server without limit.

And per request (``?requests=1``): the response's id, its receipt and its first delta's hand-over
on the wall clock, so a client on the same host that keeps each response's id (chatconform's
``response_id`` per request, GuideLLM's ``response_id``) can be judged request by request: its
first-delta time − the server's, apart from how long the request waited to be read.
"""

from __future__ import annotations

import math
import time
from typing import Any

CAP = 1_000_000
REQUEST_CAP = 200_000  # per-request records kept (the first ones), for joining with a client's


def unix_minus_monotonic() -> float:
    """This process's wall clock − its monotonic clock, now (seconds)."""
    return time.time() - time.monotonic()


def nearest_rank(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of an ascending list; None when empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _stats(values: list[float], count: int) -> dict[str, Any]:
    ordered = sorted(values)
    out: dict[str, Any] = {"count": count, "kept": len(ordered)}
    for q in (50, 90, 99):
        p = nearest_rank(ordered, q)
        out[f"p{q}"] = None if p is None else round(p, 3)
    out["max"] = round(ordered[-1], 3) if ordered else None
    return out


class SendLog:
    """Send times of streamed completions, in ms, from the loop clock."""

    def __init__(self, cap: int = CAP) -> None:
        self.cap = cap
        self.reset()

    def reset(self) -> None:
        self.ttft: list[float] = []
        self.gaps: list[float] = []
        self.late: list[float] = []
        self.counts = {"ttft": 0, "gaps": 0, "late": 0}
        self.direct = 0  # deltas written straight to the transport (calibration's emitter)
        # per request, for a client to join on the response's id: (id, received, first delta
        # handed over), both on the wall clock (time.time()), which a client on this host shares
        self.requests: list[tuple[str, float, float]] = []

    def _add(self, name: str, series: list[float], value_ms: float) -> None:
        self.counts[name] += 1
        if len(series) < self.cap:
            series.append(value_ms)

    def delta(
        self,
        t0: float,
        due: float,
        now: float,
        previous: float | None,
        direct: bool = False,
        response_id: str | None = None,
    ) -> None:
        """One content delta handed over at ``now`` (loop seconds): due at ``due``, after the
        previous delta of its stream at ``previous`` (None for the first: also kept per request,
        under ``response_id``), request at ``t0``; ``direct``: written to the transport from the
        timer's callback, not through ASGI."""
        self.direct += direct
        if previous is None:
            self._add("ttft", self.ttft, (now - t0) * 1000.0)
            self.first_sent(response_id, t0, now)
        else:
            self._add("gaps", self.gaps, (now - previous) * 1000.0)
        self._add("late", self.late, (now - due) * 1000.0)

    def first_sent(self, response_id: str | None, t0: float, now: float) -> None:
        """A request's first content delta handed over at ``now``, received at ``t0`` (both on
        ``time.monotonic()``): kept per response id, on the wall clock."""
        if response_id is None or len(self.requests) >= REQUEST_CAP:
            return
        offset = unix_minus_monotonic()
        self.requests.append((response_id, t0 + offset, now + offset))

    def per_request(self) -> list[dict[str, Any]]:
        """``{"id", "received_unix", "first_sent_unix"}`` per request, in the order sent."""
        return [{"id": rid, "received_unix": round(received, 6), "first_sent_unix": round(sent, 6)}
                for rid, received, sent in self.requests]  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        """The distributions so far: ``ttft_ms``, ``itl_ms`` (every gap), ``late_ms``."""
        return {
            "ttft_ms": _stats(self.ttft, self.counts["ttft"]),
            "itl_ms": _stats(self.gaps, self.counts["gaps"]),
            "late_ms": _stats(self.late, self.counts["late"]),
            "direct_writes": self.direct,
            # this process's wall clock − its monotonic clock, now: a client joining on the wall
            # clock can check that it reads the same (a VM's clock step may leave them apart)
            "unix_minus_monotonic": round(unix_minus_monotonic(), 6),
        }
