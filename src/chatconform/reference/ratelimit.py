"""A token-bucket rate limit on reading one session resource (ERR-3: a 429 with Retry-After).

Scope is deliberately narrow, so that no conformance suite or load profile trips it by accident:
``GET /chat/sessions/{id}``, per (key, session), ``rps`` requests per second with a burst of
``rps``. A burst of 2 x rps reads of one session within a second is answered 429. ``rps`` 0 turns
it off (``--rate-limit-rps 0``; the load runner does so).
"""

from __future__ import annotations

import math
import time

from chatconform.reference.problems import ApiError

_MAX_BUCKETS = 10_000


class RateLimiter:
    """Token buckets keyed by an opaque string; :meth:`take` raises a 429 ApiError when empty."""

    def __init__(self, rps: int) -> None:
        self.rps = rps
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.rps), now))
        return min(float(self.rps), tokens + (now - at) * self.rps)

    def take(self, key: str) -> dict[str, str]:
        """Spend one token for ``key``; the RateLimit-* headers to send (none when off)."""
        if self.rps <= 0:
            return {}
        now = time.monotonic()
        if len(self._buckets) > _MAX_BUCKETS:
            self._buckets = {
                k: v for k, v in self._buckets.items() if self._level(k, now) < self.rps
            }
        tokens = self._level(key, now)
        limited = tokens < 1.0
        if not limited:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        headers = {
            "RateLimit-Limit": str(self.rps),
            "RateLimit-Remaining": str(int(tokens)),
            "RateLimit-Reset": str(max(1, math.ceil((self.rps - tokens) / self.rps))),
        }
        if limited:
            wait = max(1, math.ceil((1.0 - tokens) / self.rps))
            raise ApiError(429, "rate_limited", f"too many requests; retry in {wait} s",
                           headers={**headers, "Retry-After": str(wait)})  # fmt: skip
        return headers
