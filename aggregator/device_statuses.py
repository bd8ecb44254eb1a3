"""What a device's retained status tells the aggregator: online or not, its health, its version.

Pure: bytes in, a reading out. The round core keeps the online set and stores the record for
`iomt fleet status`; a device whose installed version is above every version the aggregator has
gets one line saying it must rejoin (docs/operating-aggregator.md, rejoin policy).
"""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.state_store import DeviceRecord
from fleet_protocol.errors import FederationError
from fleet_protocol.messages import DeviceStatus
from fleet_protocol.wire import VerifyKey, decode_message


@dataclass(frozen=True)
class StatusReading:
    """A valid status (`record` set) or not (the device then counts as offline)."""

    record: DeviceRecord | None = None
    ahead_of_latest: str = ""  # a line for the operator when the device is ahead of us
    refused: str = ""  # why a status was not accepted (signature, ...), counted by the core

    @property
    def online(self) -> bool:
        return self.record is not None and self.record.online


def read_status(
    device_id: str,
    payload: bytes,
    now: float,
    latest_version: int | None,
    verify_key: VerifyKey | None = None,
) -> StatusReading:
    """Decode a status published on `device_id`'s topic; a forged or broken one is no status.

    With `verify_key` (a registry) the status must be signed by that device's own key.
    """
    try:
        status = decode_message(payload, expected_type=DeviceStatus, verify_key=verify_key)
    except FederationError as exc:
        return StatusReading(refused=exc.reason if verify_key is not None else "")
    if not isinstance(status, DeviceStatus) or status.device_id != device_id:
        return StatusReading()
    record = DeviceRecord(
        status.device_id, status.online, now, status.model_version, status.free_disk_bytes,
        status.cpu_temp_c, status.store_bytes, status.outbox_backlog,
    )  # fmt: skip
    return StatusReading(record, _ahead_line(status, latest_version))


def _ahead_line(status: DeviceStatus, latest_version: int | None) -> str:
    installed = status.model_version
    if latest_version is None or installed is None or installed <= latest_version:
        return ""
    return (f"device {status.device_id}: installed version {installed} is above the aggregator's"
            f" latest {latest_version}; it should rejoin on {latest_version}")  # fmt: skip
