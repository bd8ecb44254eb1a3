"""What stands between the topics and the round logic: budgets per sender, counted drops (pure).

Cheap refusals must stay cheap: a message over its sender's budget, or a chunk partial that
expired or was evicted, costs no decode, no SQLite write and no ack. The gate only counts
them; the core turns the counts into one stored rejection row per reason now and then
(`take_counts`), so a flood of thousands of messages is a handful of writes.
"""

from __future__ import annotations

from aggregator.rate_limit import RateLimit, RateLimiter
from fleet_protocol.chunking import AssemblerStats

FLUSH_INTERVAL_S = 1.0


class MessageGate:
    """Per-sender budgets plus counters of what was dropped without being looked at."""

    def __init__(self, limit: RateLimit | None = None) -> None:
        self._limiter = RateLimiter(limit or RateLimit())
        self._counts: dict[str, int] = {}
        self._chunk_seen = (0, 0)  # expired, evicted already counted
        self._flushed_at = 0.0

    def admit(self, sender: str, now: float) -> bool:
        """True when `sender` is within its budget; else the message is counted and dropped."""
        if self._limiter.allow(sender, now):
            return True
        self.count("rate_limited")
        return False

    def count(self, reason: str, times: int = 1) -> None:
        if times > 0:
            self._counts[reason] = self._counts.get(reason, 0) + times

    def note_chunks(self, stats: AssemblerStats) -> None:
        """Count partial messages the assembler expired or evicted since the last call."""
        expired, evicted = self._chunk_seen
        self.count("chunk_expired", stats.expired - expired)
        self.count("chunk_evicted", stats.evicted - evicted)
        self._chunk_seen = (stats.expired, stats.evicted)

    def due(self, now: float) -> bool:
        """Whether counts are waiting and the last flush is at least a second old."""
        return bool(self._counts) and now - self._flushed_at >= FLUSH_INTERVAL_S

    def take_counts(self, now: float) -> dict[str, int]:
        """The counts since the last call, by reason (and start counting afresh)."""
        counts, self._counts, self._flushed_at = self._counts, {}, now
        return counts
