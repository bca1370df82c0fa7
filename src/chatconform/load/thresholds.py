"""Release gates per endpoint: latency percentiles, error and violation rates, SLO attainment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# option dest -> (metric, statistic); error_rate is a plain fraction, (errors + incomplete) /
# requests. A max_* gate holds when value <= limit, a min_* gate when value >= limit.
GATES: dict[str, tuple[str, str]] = {
    "max_ttft_p95_ms": ("ttft_ms", "p95"),
    "max_itl_p99_ms": ("itl_ms", "p99"),
    "max_e2e_p95_ms": ("e2e_ms", "p95"),
    "max_error_rate": ("error_rate", ""),
    "max_violation_rate": ("conformance", "violation_rate"),
    "min_slo_attainment": ("slo", "attainment"),
    "min_goodput_rps": ("slo", "goodput_rps"),
}
HELP: dict[str, str] = {
    "max_error_rate": "limit on (errors + incomplete) / requests",
    "max_violation_rate": "limit on the share of checked streams that broke a rule "
    "(verify profile: 0)",
    "min_slo_attainment": "least share of requests meeting every --slo objective (0-1)",
    "min_goodput_rps": "least requests per second meeting every --slo objective",
}


@dataclass(frozen=True, slots=True)
class Threshold:
    option: str  # e.g. "max_ttft_p95_ms"
    limit: float

    @property
    def metric(self) -> str:
        return GATES[self.option][0]

    @property
    def statistic(self) -> str:
        return GATES[self.option][1]

    @property
    def at_least(self) -> bool:
        return self.option.startswith("min_")

    @property
    def label(self) -> str:
        return f"{self.metric}.{self.statistic}" if self.statistic else self.metric


def from_values(values: dict[str, float | None]) -> list[Threshold]:
    """Thresholds for the options that were given (None means not set)."""
    out = []
    for option in GATES:
        value = values.get(option)
        if value is not None:
            if value < 0:
                raise ValueError(f"--{option.replace('_', '-')} must be >= 0")
            out.append(Threshold(option, float(value)))
    return out


def evaluate(
    thresholds: list[Threshold], endpoints: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One result per (threshold, endpoint). A latency gate with nothing measured fails."""
    results = []
    for th in thresholds:
        for name, ep in sorted(endpoints.items()):
            if th.statistic:
                value = (ep.get(th.metric) or {}).get(th.statistic)
            else:
                value = ep.get(th.metric)
            if value is None:
                passed = False
            else:
                passed = value >= th.limit if th.at_least else value <= th.limit
            entry: dict[str, Any] = {
                "name": th.label,
                "option": "--" + th.option.replace("_", "-"),
                "endpoint": name,
                "limit": th.limit,
                "value": value,
                "passed": passed,
                "at_least": th.at_least,
            }
            if value is None:
                entry["reason"] = (
                    "no --slo objectives given"
                    if th.metric == "slo"
                    else "nothing measured (no complete request)"
                )
            results.append(entry)
    return results
