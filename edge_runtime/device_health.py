"""What a device reports about itself in its status: free disk, CPU temperature, store, outbox.

The operator reads these in `iomt fleet status` to see a device running out of room or
falling behind before it stops taking part. Every reading is optional: a board without a
thermal zone reports no temperature rather than a made-up one.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")  # millidegrees on Linux boards
_OUTBOX_NAME = re.compile(r"round-(\d+)\.bin")


@dataclass(frozen=True)
class DeviceHealth:
    """One reading of the device's health (None: the device cannot tell)."""

    free_disk_bytes: int | None
    cpu_temp_c: float | None
    store_bytes: int | None
    outbox_backlog: int | None


def read_health(
    store_path: Path, outbox: Path, acked: Callable[[int], bool], thermal: Path = THERMAL_ZONE
) -> DeviceHealth:
    """Read the disk the store lives on, the board's thermal zone and the outbox."""
    return DeviceHealth(
        free_disk_bytes=shutil.disk_usage(store_path.parent).free,
        cpu_temp_c=_cpu_temperature(thermal),
        store_bytes=_store_bytes(store_path),
        outbox_backlog=outbox_backlog(outbox, acked),
    )


def outbox_backlog(outbox: Path, acked: Callable[[int], bool]) -> int:
    """Updates written to the outbox whose round has no ack yet (they will be resent)."""
    if not outbox.is_dir():
        return 0
    rounds = [_OUTBOX_NAME.fullmatch(path.name) for path in outbox.iterdir()]
    return sum(1 for match in rounds if match is not None and not acked(int(match.group(1))))


def _cpu_temperature(thermal: Path) -> float | None:
    try:
        return int(thermal.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def _store_bytes(store_path: Path) -> int:
    """The SQLite file with its write-ahead log: what the store really occupies."""
    paths = (store_path, store_path.with_name(store_path.name + "-wal"))
    return sum(path.stat().st_size for path in paths if path.exists())
