"""What the round core remembers between events, and how it is rebuilt from the state file.

The core never reads the store: the shell reads this snapshot once at start-up
(`read_snapshot`), and from then on the core keeps it current itself while it emits the effects
that keep the store current. After a crash the same snapshot is read again, so the core resumes
from exactly what was committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aggregator.state_store import AcceptedUpdate, RoundRecord, StateStore, VersionRecord
from aggregator.update_bounds import head_violation
from fleet_protocol.types import ArrayState, Weights


@dataclass(frozen=True)
class StoredVersion:
    """One global head version."""

    version: int
    weights: Weights
    sha256: str
    parent: int | None = None
    round_id: int | None = None  # the round that produced it (None for version 0)


@dataclass
class OpenRoundMemory:
    """The round being collected and what it received so far."""

    record: RoundRecord
    accepted: dict[str, AcceptedUpdate] = field(default_factory=dict)
    strategy_state: ArrayState = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass
class RoundMemory:
    """Everything the core needs to decide; all of it re-derivable from the state file."""

    latest: StoredVersion | None = None
    open_round: OpenRoundMemory | None = None
    open_round_base: StoredVersion | None = None
    last_round: RoundRecord | None = None
    closed_rounds: int = 0
    strategy_carry: ArrayState | None = None
    last_sequences: dict[str, int] = field(default_factory=dict)
    version_sha256: dict[int, str] = field(default_factory=dict)  # every version's hash
    refused_versions: list[int] = field(default_factory=list)  # stored heads never to serve
    best_accuracy: float | None = None  # best holdout accuracy of a published head so far


def read_snapshot(store: StateStore) -> RoundMemory:
    """The core's memory as the state file holds it now."""
    rounds = store.rounds()
    open_record = store.open_round_record()
    latest, refused = _last_good_version(store)
    return RoundMemory(
        latest=latest,
        open_round=_open_round(store, open_record) if open_record else None,
        open_round_base=(_stored_version(store, open_record.base_version) if open_record else None),
        last_round=rounds[-1] if rounds else None,
        closed_rounds=sum(1 for r in rounds if r.status == "closed"),
        strategy_carry=store.strategy_carry(),
        last_sequences=store.last_sequences(),
        version_sha256={v.version: v.sha256 for v in store.versions()},
        refused_versions=refused,
        best_accuracy=_best_accuracy(rounds, after_round=store.last_rollback_round()),
    )


def _last_good_version(store: StateStore) -> tuple[StoredVersion | None, list[int]]:
    """The newest version that may be served, and the newer ones that may not (bad heads)."""
    refused: list[int] = []
    for record in reversed(store.versions()):
        stored = _stored_version(store, record.version, record)
        if head_violation(stored.weights) is None:
            return stored, refused
        refused.append(record.version)
    return None, refused


def _best_accuracy(rounds: list[RoundRecord], after_round: int) -> float | None:
    """The promotion gate's bar: the best holdout accuracy a head published since the last
    rollback reached (an operator who rolled back chose a new bar)."""
    scores = [r.metrics["best_accuracy"] for r in rounds if r.metrics and r.round_id > after_round
              and r.metrics.get("best_accuracy") is not None]  # fmt: skip
    return max(scores) if scores else None


def _stored_version(
    store: StateStore, version: int, record: VersionRecord | None = None
) -> StoredVersion:
    record = record or next(v for v in store.versions() if v.version == version)
    weights = store.load_weights(version)
    return StoredVersion(version, weights, record.sha256, record.parent, record.round_id)


def _open_round(store: StateStore, record: RoundRecord) -> OpenRoundMemory:
    round_id = record.round_id
    bytes_in, bytes_out = store.traffic(round_id)
    return OpenRoundMemory(
        record=record,
        accepted={u.device_id: u for u in store.accepted_updates(round_id)},
        strategy_state=store.strategy_state(round_id),
        rejected=store.rejections(round_id),
        bytes_in=bytes_in,
        bytes_out=bytes_out,
    )
