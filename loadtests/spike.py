"""A spike: the base user count, five times as many for a fifth of the run, then the base again.

Use with the users: ``locust -f loadtests/locustfile.py,loadtests/spike.py ...`` (the ``spike``
profile does). Phases are fractions of ``--run-time``: base until 40 %, spike until 60 %.
"""

from __future__ import annotations

from locust import LoadTestShape

from chatconform.load.plugin import CONTEXT

DEFAULT_RUN_TIME_S = 60.0
SPIKE_FACTOR = 5


class SpikeShape(LoadTestShape):
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        opts = self.runner.environment.parsed_options if self.runner else None
        base = max(int(getattr(opts, "num_users", None) or 1), 1)
        rate = float(getattr(opts, "spawn_rate", None) or base)
        planned = CONTEXT.settings.run_time if CONTEXT is not None else None
        total = planned or DEFAULT_RUN_TIME_S
        t = self.get_run_time()
        if t >= total and planned is None:
            return None  # without a planned run time the shape ends the run itself
        if 0.4 * total <= t < 0.6 * total:
            return base * SPIKE_FACTOR, rate * SPIKE_FACTOR
        return base, rate
