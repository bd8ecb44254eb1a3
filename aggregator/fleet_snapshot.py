"""What the metrics endpoint and the live page show, read from the state file in one go.

A value, not a view: `read_fleet_snapshot` does the reading (its own SQLite connection, so the
page never shares the service's), and the Prometheus collector and the HTML page only format it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aggregator.fleet_view import FleetRow, fleet_rows
from aggregator.state_store import StateStore


@dataclass(frozen=True)
class RoundPoint:
    """One closed round as the charts plot it."""

    round_id: int
    status: str
    participants: int
    accuracy: float | None
    bytes_in: int
    bytes_out: int


@dataclass(frozen=True)
class FleetSnapshot:
    """Rounds, devices and refusals at one instant."""

    rounds: list[RoundPoint] = field(default_factory=list)
    devices: list[FleetRow] = field(default_factory=list)
    rejections: dict[str, int] = field(default_factory=dict)
    latest_version: int | None = None
    open_round: int | None = None
    initial_accuracy: float | None = None  # round 0: the pretrained head (version 0), on holdout

    @property
    def devices_online(self) -> int:
        return sum(1 for device in self.devices if device.online)

    def rounds_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for point in self.rounds:
            counts[point.status] = counts.get(point.status, 0) + 1
        return counts


def read_fleet_snapshot(state_path: Path) -> FleetSnapshot:
    """Everything the page and the metrics need, from the aggregator's state file."""
    with StateStore(state_path) as store:
        records = store.rounds()
        latest = store.latest_version()
        open_record = store.open_round_record()
        first = records[0].metrics if records and records[0].base_version == 0 else None
        return FleetSnapshot(
            rounds=[_point(r.round_id, r.metrics) for r in records if r.status == "closed"],
            initial_accuracy=_float((first or {}).get("base_accuracy")),
            devices=fleet_rows(store.devices(), None),
            rejections=store.rejection_totals(),
            latest_version=None if latest is None else latest.version,
            open_round=None if open_record is None else open_record.round_id,
        )


def _point(round_id: int, metrics: dict[str, object] | None) -> RoundPoint:
    m = metrics or {}
    return RoundPoint(
        round_id,
        str(m.get("status", "closed")),
        _int(m.get("participants")),
        _float(m.get("accuracy")),
        _int(m.get("bytes_in")),
        _int(m.get("bytes_out")),
    )


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _int(value: object) -> int:
    return int(value) if isinstance(value, (int, float)) else 0
