"""A spike: the base user count, five times as many for a fifth of the run, then the base again.

Use with the users: ``locust -f loadtests/locustfile.py,loadtests/spike.py ...`` (the ``spike``
profile does). Phases are fractions of ``--run-time``: base until 40 %, spike until 60 %.
The run time is read at each tick from the plugin's context (set by Locust's init event, after
this file is imported), so ``--run-time`` is honoured; chatconform's plugin ends the run.
"""

from __future__ import annotations

from locust import LoadTestShape

from chatconform.load import plugin

DEFAULT_RUN_TIME_S = 60.0
SPIKE_FACTOR = 5


class SpikeShape(LoadTestShape):
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        opts = self.runner.environment.parsed_options if self.runner else None
        base = max(int(getattr(opts, "num_users", None) or 1), 1)
        rate = float(getattr(opts, "spawn_rate", None) or base)
        ctx = plugin.CONTEXT  # looked up now: it did not exist when this module was imported
        planned = ctx.settings.run_time if ctx is not None else None
        total = planned or DEFAULT_RUN_TIME_S
        t = self.get_run_time()
        if t >= total and planned is None:
            return None  # without a planned run time the shape ends the run itself
        if 0.4 * total <= t < 0.6 * total:
            return base * SPIKE_FACTOR, rate * SPIKE_FACTOR
        return base, rate
