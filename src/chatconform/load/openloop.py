"""Open-loop arrivals: requests per second on an absolute schedule, split over worker processes.

Arrival ``i`` is due at ``start + offset_i`` whatever happened to earlier requests, so a stalled
server shows up as latency (requests keep leaving on time) instead of as fewer requests. With
``workers`` processes each one takes ``rate / workers``: constant arrivals are interleaved
(worker ``k`` is shifted by ``k / rate``), Poisson arrivals use independent seeded streams (a
superposition of Poisson processes is a Poisson process of the summed rate).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

ARRIVALS = ("constant", "poisson")


def offsets_ns(
    rate: float, arrival: str, worker_index: int = 0, workers: int = 1, seed: int = 1
) -> Iterator[int]:
    """Offsets (ns from the run's start) of this worker's arrivals; endless."""
    if rate <= 0:
        raise ValueError("rate must be > 0")
    if arrival not in ARRIVALS:
        raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}")
    workers = max(workers, 1)
    per_worker = rate / workers
    if arrival == "constant":
        period = 1e9 / per_worker
        shift = worker_index * 1e9 / rate
        i = 0
        while True:
            yield int(shift + i * period)
            i += 1
    rng = random.Random(seed * 1_000_003 + worker_index)
    t = 0.0
    while True:
        t += rng.expovariate(per_worker) * 1e9
        yield int(t)
