"""The run's knobs and the shared context that every handler reaches through ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass, field

from chatconform.reference.faults import Switches


@dataclass(frozen=True)
class Settings:
    """Latency knobs (the ground truth for load measurements), reply length and switches."""

    ttft_ms: int = 20
    itl_ms: int = 5
    tokens: int = 8
    rate_limit_rps: int = 20
    switches: Switches = field(default_factory=Switches)
