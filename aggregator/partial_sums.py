"""The coordinator's side of partial sums: keep each signer's latest, add them once disjoint.

Workers (and site aggregators) each send a growing, signed `PartialSum` for the open round.
`PartialSumBook` keeps the newest one per signer and adds them into the round's aggregate. A
device can appear in two signers' sums when its resend reached another worker (its first
worker died after committing but before acking): `owner_of` settles who keeps it (the smallest
signer id) and every other signer drops it (`devices_to_drop`) and re-sends. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aggregator.core_config import Strategy
from aggregator.round_events import Log
from aggregator.strategies.base import StreamingStrategy
from fleet_protocol.errors import AggregationError, FederationError, SignatureError
from fleet_protocol.partial_sum import PartialSum, decode_partial_sum
from fleet_protocol.wire import VerifyKey


@dataclass(frozen=True)
class Coordination:
    """A coordinator's trust in partial sums: signer id -> its public key (None: unsigned).

    With `--partial-signers` every worker and site has a key of its own (a registry file);
    without it, the coordinator's own public key for every signer (they share its key)."""

    verify_key: VerifyKey | None = None


@dataclass(frozen=True)
class CombinedSum:
    """The sum of every kept partial sum of a round."""

    weighted_sum: np.ndarray  # (model_size,) float64
    total_weight: int
    participants: tuple[str, ...]


def owner_of(claimers: set[str]) -> str:
    """The one signer that keeps a device several signers claim (the smallest id)."""
    return min(claimers)


def devices_to_drop(own_id: str, own: set[str], others: dict[str, set[str]]) -> set[str]:
    """Devices `own_id` must take out of its sum because a signer with a smaller id holds them."""
    drop: set[str] = set()
    for signer, participants in others.items():
        if signer != own_id and owner_of({signer, own_id}) == signer:
            drop |= own & participants
    return drop


class PartialSumBook:
    """The newest partial sum of each signer for one round and model version."""

    def __init__(self, fleet: str, round_id: int, model_version: int,
                 shapes: list[tuple[int, ...]]) -> None:  # fmt: skip
        self.fleet, self.round_id, self.model_version = fleet, round_id, model_version
        self.shapes = [tuple(shape) for shape in shapes]
        self.latest: dict[str, PartialSum] = {}
        self._refusals_said: set[tuple[str, str]] = set()

    def verified(self, topic_signer: str, payload: bytes,
                 verify_key: VerifyKey | None) -> tuple[PartialSum | str, Log | None]:  # fmt: skip
        """Decode and verify what arrived on `partial/{topic_signer}`: the partial sum, or why
        it was refused and, the first time this round a signer is refused for a reason, the
        line to log. A refused sum is never offered: it changes nothing."""
        try:
            partial = decode_partial_sum(payload, verify_key=verify_key,
                                         expected_shapes=self.shapes)  # fmt: skip
            if partial.signer_id != topic_signer:
                raise SignatureError(f"it is {partial.signer_id!r}'s sum")
        except FederationError as exc:
            return exc.reason, self._say_once(topic_signer, exc.reason, str(exc))
        return partial, None

    def _say_once(self, signer: str, reason: str, detail: str) -> Log | None:
        if (signer, reason) in self._refusals_said:
            return None
        self._refusals_said.add((signer, reason))
        return Log(f"round {self.round_id}: partial sum on partial/{signer} refused ({reason}):"
                   f" {detail}; none of it is added")  # fmt: skip

    def offer(self, partial: PartialSum) -> str | None:
        """Keep `partial` if it is this round's and newer than its signer's; else why not."""
        if partial.fleet != self.fleet:
            return "fleet"
        if partial.round_id != self.round_id:
            return "stale_round" if partial.round_id < self.round_id else "future_round"
        if partial.model_version != self.model_version:
            return "base_version"
        if list(partial.shapes) != self.shapes:
            return "shape"
        kept = self.latest.get(partial.signer_id)
        if kept is not None and partial.sequence <= kept.sequence:
            return "stale_sequence"
        self.latest[partial.signer_id] = partial
        return None

    @property
    def participants(self) -> set[str]:
        """Every device some kept partial sum holds."""
        return {device for p in self.latest.values() for device in p.participants}

    @property
    def total_weight(self) -> int:
        """Examples in the kept partial sums (counting a device claimed twice twice)."""
        return sum(p.total_weight for p in self.latest.values())

    def overlaps(self) -> dict[str, set[str]]:
        """Devices held by more than one signer, and by whom."""
        claimers: dict[str, set[str]] = {}
        for partial in self.latest.values():
            for device in partial.participants:
                claimers.setdefault(device, set()).add(partial.signer_id)
        return {device: who for device, who in claimers.items() if len(who) > 1}

    def without_unresolved(self) -> list[str]:
        """Drop the sums of signers that still hold a device they do not own; their ids."""
        losers = {s for who in self.overlaps().values() for s in who if s != owner_of(who)}
        for signer in losers:
            del self.latest[signer]
        return sorted(losers)

    def combined(self) -> CombinedSum:
        """Add the kept sums; `AggregationError` while a device is held twice."""
        overlap = self.overlaps()
        if overlap:
            raise AggregationError(f"devices {sorted(overlap)} are in several partial sums")
        size = sum(int(np.prod(shape)) for shape in self.shapes)
        total = np.zeros(size, dtype=np.float64)
        for signer in sorted(self.latest):  # a fixed order: the same sum whatever the arrival
            total += self.latest[signer].weighted_sum
        participants = tuple(sorted(self.participants))
        return CombinedSum(total, self.total_weight, participants)


def fold_into(strategy: StreamingStrategy, combined: CombinedSum) -> None:
    """Add the combined partial sums to the strategy's round (before `finish_round`)."""
    strategy.accumulate_sum(combined.weighted_sum, combined.total_weight,
                            list(combined.participants))  # fmt: skip


def fold_partial_sums(strategy: Strategy, book: PartialSumBook, round_id: int) -> list[Log]:
    """At a round's close: settle what is still held twice, fold the rest; lines to log."""
    lines = []
    left_out = book.without_unresolved()
    if left_out:
        lines.append(Log(f"round {round_id}: partial sums of {', '.join(left_out)} left out: they"
                         " still hold devices a worker with a smaller id holds"))  # fmt: skip
    if not book.latest:
        return lines
    try:
        if not isinstance(strategy, StreamingStrategy):
            raise AggregationError(f"{type(strategy).__name__} cannot fold partial sums")
        combined = book.combined()
        fold_into(strategy, combined)
    except FederationError as exc:
        book.latest.clear()
        return [*lines, Log(f"round {round_id}: partial sums not folded ({exc.reason}): {exc}")]
    lines.append(
        Log(
            f"round {round_id}: {len(combined.participants)} updates from"
            f" {len(book.latest)} partial sums ({', '.join(sorted(book.latest))})"
        )
    )
    return lines
