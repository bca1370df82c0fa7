"""The run's knobs and the shared context that every handler reaches through ``app.state``."""

from __future__ import annotations

import uuid
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
    #: ``--calibration``: the least work per event, and the server's own send times recorded
    calibration: bool = False

    @property
    def deterministic(self) -> bool:
        """The agent's reply is a function of the request (not under ``random-replies``)."""
        return not self.switches.has("random-replies")

    def reply_nonce(self) -> str | None:
        """A fresh word for one reply under ``random-replies``, else None (a deterministic reply)."""
        return None if self.deterministic else uuid.uuid4().hex[:8]
