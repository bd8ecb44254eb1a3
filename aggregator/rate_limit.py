"""Per-device message budgets (pure: time comes in as an argument).

A device that floods its topics must not cost the aggregator a SQLite write and an ack per
message. Each sender id has a token bucket: `burst` messages at once, refilled at
`rate_per_s`. A message over budget is dropped before it is decoded and only counted. The
number of ids tracked is bounded too (the least recently seen is forgotten), so a flood of
made-up ids cannot grow memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_RATE_PER_S = 20.0
DEFAULT_BURST = 64  # one chunked update of 8 MiB is 64 chunks of 128 KiB
DEFAULT_MAX_TRACKED = 10_000


@dataclass(frozen=True)
class RateLimit:
    """How many messages one device may send: `burst` at once, `rate_per_s` sustained."""

    rate_per_s: float = DEFAULT_RATE_PER_S
    burst: int = DEFAULT_BURST
    max_tracked: int = DEFAULT_MAX_TRACKED


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by sender id."""

    def __init__(self, limit: RateLimit = RateLimit()) -> None:
        self.limit = limit
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, sender: str, now: float) -> bool:
        """Take one token from `sender`'s bucket; False when it has none left."""
        bucket = self._buckets.pop(sender, None)
        if bucket is None:
            bucket = _Bucket(float(self.limit.burst), now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(
            float(self.limit.burst), bucket.tokens + elapsed * self.limit.rate_per_s
        )
        bucket.updated = now
        self._buckets[sender] = bucket  # most recently seen last
        while len(self._buckets) > self.limit.max_tracked:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    @property
    def tracked(self) -> int:
        """How many sender ids have a bucket right now."""
        return len(self._buckets)
