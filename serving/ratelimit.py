"""Per-key rate limit: a token bucket for each API key id, checked after authentication.

A key may send ``burst`` requests at once and then ``per_minute / 60`` a second on average;
a request that finds the bucket empty is answered 429 with ``Retry-After`` (whole seconds
until a token is back) and never reaches the model or the audit log. Buckets live in the
worker process (the event loop is single-threaded, so no lock is needed): with N workers a
key gets up to N times the rate, which the settings' docs say. ``per_minute = 0`` turns the
limit off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets by key id: ``check(key_id)`` returns 0 when allowed, else seconds to wait."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = float(max(burst, 1))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, time of last update)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, key_id: str) -> int:
        """Take one token for ``key_id``; 0 if it was there, else the whole seconds until one is."""
        if not self.enabled:
            return 0
        now = self.clock()
        tokens, last = self._buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0
        self._buckets[key_id] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.rate))
