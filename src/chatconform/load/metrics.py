"""Latency metrics named and defined as vLLM's serving benchmark names them, on HDR histograms.

Each distribution keeps an exact count, sum, min and max, and an HDR histogram (1 µs to 1 h,
3 significant digits: a percentile is within 0.1 % of the raw sample's value) for the
percentiles, so memory stays bounded however long a soak runs. Only ``ok`` requests (a
terminal ``done`` / ``[DONE]`` frame) enter latency; the other outcomes are counted apart.
Per endpoint it also counts the conformance of the streams (checked, violating, per rule, an
example) and, with objectives, SLO attainment and goodput (chatconform.load.slo). docs/metrics.md
maps each name to vLLM's, GuideLLM's and AIPerf's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from chatconform.load import slo as slo_mod
from chatconform.load.timeline import (
    CENSORED,
    DROPPED,
    ERRORS,
    INCOMPLETE,
    OK,
    derived,
    itl_gaps,
)

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
_LOWEST_US, _HIGHEST_US, _DIGITS = 1, 3_600_000_000, 3

# name -> formula, printed with the figures (vLLM benchmark_serving names)
DEFINITIONS: dict[str, str] = {
    "ttfb_ms": "response headers received − request sent",
    "ttft_ms": "first delta carrying text − request sent (a role-only chunk is not text)",
    "itl_ms": "every gap between consecutive content deltas, pooled over requests (vLLM ITL)",
    "tpot_ms": "(E2E − TTFT) / (output tokens − 1), per request with > 1 token (vLLM TPOT)",
    "e2e_ms": "terminal frame (done / [DONE]) − request sent",
    "stall_ms": "a request's largest gap between consecutive content deltas",
    "tail_ms": "a request's terminal frame − its last content delta",
    "recv_lag_ms": "sessions: a request's worst receive time − frame tsMs (server stamp); the "
    "measurement's own delay (one host or synced clocks)",
    "output_tokens": "server usage.completion_tokens when given (token_source usage), else "
    "content deltas (token_source chunks)",
    "tokens_per_s": "output tokens of ok requests / run window (first send to last close)",
    "requests_per_s": "ok requests / run window",
    "dispatch_lag_ms": "first send − intended start (open loop: late when > 10 ms)",
    "censored": "in flight when the run ended and never finished: counted, elapsed shown, "
    "not in latency",
    "warm_up_requests": "sent in the run's first --warm-up seconds: counted as requests, errors "
    "and conformance, left out of latency, throughput and SLO figures",
}
LATENCIES = (
    "ttfb_ms", "ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "stall_ms", "tail_ms", "recv_lag_ms",
)  # fmt: skip
PER_REQUEST = ("ttfb_ms", "ttft_ms", "tpot_ms", "e2e_ms", "stall_ms", "tail_ms", "recv_lag_ms")


def percentile_key(p: float) -> str:
    return f"p{p:g}"


class Distribution:
    """Exact count/sum/min/max plus an HDR histogram (µs) for percentiles."""

    __slots__ = ("count", "hist", "max", "min", "total")

    def __init__(self) -> None:
        self.hist = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)
        self.count = 0
        self.total = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def add(self, value_ms: float) -> None:
        value_ms = max(value_ms, 0.0)
        self.count += 1
        self.total += value_ms
        self.min = min(self.min, value_ms)
        self.max = max(self.max, value_ms)
        self.hist.record_value(min(round(value_ms * 1000), _HIGHEST_US))

    def percentile(self, p: float) -> float | None:
        if not self.count:
            return None
        value = self.hist.get_value_at_percentile(p) / 1000.0
        return min(max(value, self.min), self.max)  # an HDR bucket never reports past the raw range

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count}
        if not self.count:
            out.update({"mean": None, "min": None, "max": None})
            out.update({percentile_key(p): None for p in PERCENTILES})
            return out
        out["mean"] = round(self.total / self.count, 3)
        for p in PERCENTILES:
            out[percentile_key(p)] = round(self.percentile(p) or 0.0, 3)
        out["min"] = round(self.min, 3)
        out["max"] = round(self.max, 3)
        return out


@dataclass
class Conformance:
    """Streams judged by the suites' checks, per endpoint."""

    checked: int = 0
    violating: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    example: dict[str, Any] | None = None

    def add(self, sample: dict[str, Any]) -> bool:
        """Count one sample; True when it is violating."""
        if not sample.get("checked"):
            return False
        self.checked += 1
        found = sample.get("violations") or []
        if not found:
            return False
        self.violating += 1
        for f in found:
            self.by_rule[f["rule"]] = self.by_rule.get(f["rule"], 0) + 1
        if self.example is None:
            first = found[0]
            self.example = {
                "rule": first["rule"],
                "message": first["message"],
                "request_id": sample.get("id"),
            }
        return True

    def summary(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "violating": self.violating,
            "violation_rate": round(self.violating / self.checked, 6) if self.checked else 0.0,
            "by_rule": dict(sorted(self.by_rule.items())),
            "example": self.example,
        }


@dataclass
class EndpointMetrics:
    """Everything measured for one endpoint, fed with samples (Timeline.to_sample dicts)."""

    objectives: dict[str, float] = field(default_factory=dict)
    requests: int = 0  # attempts: ok + errors + incomplete + censored (dropped kept apart)
    outcomes: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    token_sources: dict[str, int] = field(default_factory=dict)
    dist: dict[str, Distribution] = field(
        default_factory=lambda: {name: Distribution() for name in LATENCIES}
    )
    censored_elapsed: Distribution = field(default_factory=Distribution)
    conformance: Conformance = field(default_factory=Conformance)
    attained: int = 0
    warm_up: int = 0  # requests sent in the warm-up: counted and checked, not measured
    warm_up_ok: int = 0
    first_sent: float | None = None  # ms on the run's clock (wall of the first sample)
    last_close: float | None = None

    def add(self, sample: dict[str, Any]) -> None:
        outcome = sample["outcome"]
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome == DROPPED:
            return
        self.requests += 1
        violating = self.conformance.add(sample)
        if sample.get("warmup"):  # errors and conformance above; no latency, tokens or window
            self.warm_up += 1
            self.warm_up_ok += outcome == OK
            return
        self._window(sample)
        if outcome == CENSORED:
            sent, close = sample["sent_ms"], sample["close_ms"]
            if sent is not None and close is not None:
                self.censored_elapsed.add(close - sent)
            return
        if outcome != OK:
            return
        figures = derived(sample)
        if self.objectives and slo_mod.attains(self.objectives, True, violating, figures):
            self.attained += 1
        for name in PER_REQUEST:
            value = figures[name]
            if value is not None:
                self.dist[name].add(value)
        itl = self.dist["itl_ms"]
        for gap in itl_gaps(sample):
            itl.add(gap)
        tokens = sample.get("output_tokens")
        self.tokens += len(sample["content_ms"]) if tokens is None else tokens
        source = sample.get("token_source") or "chunks"
        self.token_sources[source] = self.token_sources.get(source, 0) + 1

    def _window(self, sample: dict[str, Any]) -> None:
        sent = sample["sent_ms"]
        if sent is None:
            return
        start = sample["wall"] * 1000.0 + sent
        end = sample["wall"] * 1000.0 + (sample["close_ms"] or sample["terminal_ms"] or sent)
        self.first_sent = start if self.first_sent is None else min(self.first_sent, start)
        self.last_close = end if self.last_close is None else max(self.last_close, end)

    @property
    def errors(self) -> int:
        return sum(self.outcomes.get(o, 0) for o in ERRORS)

    @property
    def incomplete(self) -> int:
        return self.outcomes.get(INCOMPLETE, 0)

    @property
    def censored(self) -> int:
        return self.outcomes.get(CENSORED, 0)

    @property
    def ok(self) -> int:
        return self.outcomes.get(OK, 0)

    @property
    def measured(self) -> int:
        """Requests past the warm-up: the ones latency, throughput and SLO figures are over."""
        return self.requests - self.warm_up

    def window_s(self) -> float | None:
        if self.first_sent is None or self.last_close is None:
            return None
        return max((self.last_close - self.first_sent) / 1000.0, 1e-6)

    def token_source(self) -> str | None:
        sources = [s for s, n in self.token_sources.items() if n]
        if not sources:
            return None
        return sources[0] if len(sources) == 1 else "mixed"

    def slo_summary(self, window: float | None) -> dict[str, Any] | None:
        if not self.objectives:
            return None
        return {
            "objectives": dict(self.objectives),
            "itl_ms_is": "the request's worst gap between content deltas",
            "attained": self.attained,
            "requests": self.measured,
            "attainment": round(self.attained / self.measured, 6) if self.measured else 0.0,
            "goodput_rps": round(self.attained / window, 3) if window else 0.0,
        }

    def summary(self) -> dict[str, Any]:
        window = self.window_s()
        out: dict[str, Any] = {
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "incomplete": self.incomplete,
            "censored": self.censored,
            "error_rate": round((self.errors + self.incomplete) / self.requests, 6)
            if self.requests
            else 0.0,
            "outcomes": dict(sorted(self.outcomes.items())),
            "output_tokens": self.tokens,
            "token_source": self.token_source(),
            "token_sources": dict(sorted(self.token_sources.items())),
        }
        for name in LATENCIES:
            out[name] = self.dist[name].summary()
        out["censored_elapsed_ms"] = self.censored_elapsed.summary()
        out["tokens_per_s"] = round(self.tokens / window, 3) if window else 0.0
        out["requests_per_s"] = round((self.ok - self.warm_up_ok) / window, 3) if window else 0.0
        out["warm_up_requests"] = self.warm_up
        out["window_s"] = round(window, 3) if window else None
        out["conformance"] = self.conformance.summary()
        out["slo"] = self.slo_summary(window)
        return out


class RunMetrics:
    """Per-endpoint metrics plus the open-loop dispatch lag, over all workers' samples."""

    LATE_MS = 10.0

    def __init__(self, objectives: dict[str, float] | None = None) -> None:
        self.objectives = dict(objectives or {})
        self.endpoints: dict[str, EndpointMetrics] = {}
        self.dispatch = Distribution()
        self.late = 0
        self.scheduled = 0  # open-loop arrivals (including dropped ones)

    def add(self, sample: dict[str, Any], open_loop: bool = False) -> None:
        ep = self.endpoints.get(sample["endpoint"])
        if ep is None:
            ep = self.endpoints[sample["endpoint"]] = EndpointMetrics(self.objectives)
        ep.add(sample)
        if open_loop:
            self.scheduled += 1
            lag = sample["dispatch_ms"]
            if sample["outcome"] == DROPPED or lag is None:
                self.late += 1
            else:
                self.dispatch.add(lag)
                if lag > self.LATE_MS:
                    self.late += 1

    @property
    def late_share(self) -> float | None:
        return round(self.late / self.scheduled, 6) if self.scheduled else None
