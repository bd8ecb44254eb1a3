"""One row per device for `iomt fleet status`: what the state file heard, joined with the registry.

Pure: takes the stored device records, the registry's entries and the time, returns rows. The
command reads the files and prints; a test can build any fleet from values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from aggregator.device_registry import DeviceEntry
from aggregator.state_store import DeviceRecord


@dataclass(frozen=True)
class FleetRow:
    """One device as the operator sees it."""

    device_id: str
    registry: str  # "trusted" | "revoked" | "unregistered" | "no registry"
    online: bool
    last_seen_unix: float | None
    model_version: int | None
    last_round: int | None
    rejections: dict[str, int] = field(default_factory=dict)
    free_disk_bytes: int | None = None
    cpu_temp_c: float | None = None
    store_bytes: int | None = None
    outbox_backlog: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fleet_rows(
    heard: list[DeviceRecord], registered: dict[str, DeviceEntry] | None
) -> list[FleetRow]:
    """Every device heard of or registered, sorted by id (`registered` None: no registry given)."""
    by_id = {record.device_id: record for record in heard}
    ids = sorted({*by_id, *(registered or {})})
    return [_row(device, by_id.get(device), registered) for device in ids]


def _registry_state(device_id: str, registered: dict[str, DeviceEntry] | None) -> str:
    if registered is None:
        return "no registry"
    entry = registered.get(device_id)
    if entry is None:
        return "unregistered"
    return "revoked" if entry.revoked else "trusted"


def _row(
    device_id: str, record: DeviceRecord | None, registered: dict[str, DeviceEntry] | None
) -> FleetRow:
    state = _registry_state(device_id, registered)
    if record is None:
        return FleetRow(device_id, state, False, None, None, None)
    return FleetRow(
        device_id, state, record.online, record.last_seen_unix or None, record.model_version,
        record.last_round, dict(record.rejections), record.free_disk_bytes, record.cpu_temp_c,
        record.store_bytes, record.outbox_backlog,
    )  # fmt: skip


def format_row(row: FleetRow, now: float) -> str:
    """One aligned line: id, online, registry state, last seen, version, round, health, refusals."""
    seen = "never" if row.last_seen_unix is None else f"{_ago(now - row.last_seen_unix)} ago"
    health = " ".join(
        f"{name}={value}"
        for name, value in (
            ("disk", _size(row.free_disk_bytes)),
            ("temp", None if row.cpu_temp_c is None else f"{row.cpu_temp_c:.0f}C"),
            ("store", _size(row.store_bytes)),
            ("outbox", row.outbox_backlog),
        )
        if value is not None
    )
    refused = ",".join(f"{reason}:{count}" for reason, count in row.rejections.items()) or "-"
    return (
        f"{row.device_id:16s} {'online' if row.online else 'offline':7s} {row.registry:12s}"
        f" seen {seen:10s} version {_dash(row.model_version):4s} round {_dash(row.last_round):4s}"
        f" rejected {refused} {health}"
    ).rstrip()


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _size(value: int | None) -> str | None:
    if value is None:
        return None
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("k", 1 << 10)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value}B"
