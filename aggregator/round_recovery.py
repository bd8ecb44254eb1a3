"""Recovering from a state file that holds heads which may not be served (pure).

An older release could store a non-finite head; every restart then republished it and died.
`roll_back` decides what to do instead: serve the newest good head again under a new version
number (devices only move forward), clear the bad versions, and close a round left open on a
bad base (its deltas no longer apply). It updates the core's memory and returns the effects;
the core publishes the retained-model clears.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from aggregator.round_events import (
    Effect,
    Log,
    RoundMetrics,
    StoreClosedRound,
    StoreRejection,
    StoreVersion,
)
from aggregator.round_memory import OpenRoundMemory, RoundMemory, StoredVersion
from fleet_protocol.types import Weights
from fleet_protocol.wire import message_sha256


@dataclass
class RollBack:
    """What a roll-back decided: effects to carry out, versions whose retained models to clear."""

    effects: list[Effect] = field(default_factory=list)
    cleared_versions: list[int] = field(default_factory=list)


def roll_back(memory: RoundMemory, initial_weights: Weights, now: float) -> RollBack:
    """Serve the last good head (or the bundle's) again; `memory.refused_versions` is consumed."""
    refused, good = sorted(memory.refused_versions), memory.latest
    weights = good.weights if good is not None else initial_weights
    sha, number = message_sha256(weights), max(refused) + 1
    parent = good.version if good is not None else None
    memory.latest = StoredVersion(number, weights, sha, parent)
    memory.version_sha256[number] = sha
    memory.refused_versions = []
    source = "the bundle head" if parent is None else f"version {parent}"
    plan = RollBack([StoreVersion(number, weights, sha, parent),
                     Log(f"state holds unusable head version(s) {refused}: rolled back to "
                         f"{source} as version {number}")], refused)  # fmt: skip
    base = memory.open_round_base
    if memory.open_round is not None and (base is None or base.version in refused):
        plan.effects += _close_abandoned(memory, memory.open_round, now)
    return plan


def _close_abandoned(memory: RoundMemory, stored: OpenRoundMemory, now: float) -> list[Effect]:
    record = stored.record
    rejected = {**stored.rejected, "head_rolled_back": 1}
    metrics = RoundMetrics(record.round_id, record.base_version, record.base_version,
                           "aggregation_failed", len(stored.accepted), 0, 0, rejected, 0,
                           round(now - record.opened_unix, 3))  # fmt: skip
    memory.closed_rounds += 1
    memory.last_round = replace(record, status="closed", closed_unix=now)
    memory.open_round = memory.open_round_base = None
    return [StoreRejection(record.round_id, "head_rolled_back"),
            StoreClosedRound(record.round_id, metrics, now)]  # fmt: skip
