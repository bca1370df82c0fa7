"""Service-level objectives per request, SLO attainment and goodput (after DistServe).

``--slo ttft_ms=250,itl_ms=50,tpot_ms=30,e2e_ms=2000``: a request *attains* the SLO when it
completed (a terminal ``done`` / ``[DONE]`` frame), its stream broke no checked rule, and every
given objective holds for it:

- ``ttft_ms``: its TTFT (first content delta − sent) ≤ the objective;
- ``itl_ms``: its *worst* gap between consecutive content deltas (its stall) ≤ the objective
  (the largest gap, not a percentile: one stall is what a reader of that reply sees);
- ``tpot_ms``: its TPOT, (E2E − TTFT) / (output tokens − 1), ≤ the objective;
- ``e2e_ms``: its E2E (terminal frame − sent) ≤ the objective.

A reply of one content delta has no gap and no TPOT, which does not fail those objectives; a
reply with no content delta has no TTFT, which fails a TTFT objective.
Errors, incomplete, censored and non-conformant requests are misses. Attainment = attained /
requests (every attempt); goodput = attained requests per second of the run window, as vLLM's
``--goodput`` and GuideLLM's constraint-based goodput count them.
"""

from __future__ import annotations

from typing import Any

OBJECTIVES: dict[str, str] = {
    "ttft_ms": "ttft_ms",  # objective -> the per-request figure (timeline.derived) it limits
    "itl_ms": "stall_ms",
    "tpot_ms": "tpot_ms",
    "e2e_ms": "e2e_ms",
}

REQUIRED = ("ttft_ms", "e2e_ms")  # every completed reply with content has these


class SLOError(ValueError):
    """A malformed --slo value."""


def parse(text: str | None) -> dict[str, float]:
    """``"ttft_ms=250,e2e_ms=2000"`` -> ``{"ttft_ms": 250.0, "e2e_ms": 2000.0}``; "" -> {}."""
    out: dict[str, float] = {}
    if not text:
        return out
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in OBJECTIVES:
            raise SLOError(
                f"bad --slo part {part!r}: give name=milliseconds with names "
                + ", ".join(OBJECTIVES)
            )
        try:
            limit = float(value)
        except ValueError:
            raise SLOError(f"bad --slo value {value!r} for {name}: not a number") from None
        if not limit > 0:
            raise SLOError(f"--slo {name} must be > 0 ms")
        out[name] = limit
    return out


def render(objectives: dict[str, float]) -> str:
    return ",".join(f"{k}={v:g}" for k, v in objectives.items())


def attains(
    objectives: dict[str, float], ok: bool, violating: bool, figures: dict[str, Any]
) -> bool:
    """Whether one request meets the SLO (see the module docstring)."""
    if not ok or violating:
        return False
    for name, limit in objectives.items():
        value = figures.get(OBJECTIVES[name])
        if value is None and name in REQUIRED:
            return False
        if value is not None and value > limit:
            return False
    return True
