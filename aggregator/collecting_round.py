"""The round the aggregator core is collecting: its stored memory plus what lives only here.

Shared by the core's parts (`aggregator.core_state`, `aggregator.round_intake`,
`aggregator.round_core`) and by the buffered asynchronous core, which stores a buffer as a round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aggregator.partial_sums import PartialSumBook
from aggregator.round_memory import OpenRoundMemory, StoredVersion
from aggregator.secure_aggregation.service_round import SecureCollection
from aggregator.update_bounds import UpdateBounds


@dataclass
class CollectingRound:
    """The round being collected: its stored memory plus what only lives in this process."""

    memory: OpenRoundMemory
    base: StoredVersion
    deadline: float
    bounds: UpdateBounds
    seen_online: set[str] = field(default_factory=set)  # online at any time during the round
    participants: set[str] = field(default_factory=set)  # devices whose data is in the sum
    resent: int = 0
    secure: SecureCollection | None = None
    partials: PartialSumBook | None = None  # a coordinator's workers' (or sites') sums

    @property
    def round_id(self) -> int:
        return self.memory.record.round_id

    def count_rejected(self, reason: str, times: int = 1) -> None:
        """Add refusals to the round's count by reason (reported in its metrics)."""
        rejected = self.memory.rejected
        rejected[reason] = rejected.get(reason, 0) + times
