"""The health fields of `DeviceStatus` are optional on the wire, in both directions.

A device of the previous release sends no health and an aggregator of the previous release
refuses unknown fields; so health is left out when unknown and accepted when absent.
"""

from __future__ import annotations

import pytest

from fleet_protocol.errors import ProtocolError
from fleet_protocol.messages import DeviceStatus
from fleet_protocol.schema import fields_from_wire, fields_to_wire
from fleet_protocol.wire import decode_message, encode_message


def test_health_round_trips() -> None:
    status = DeviceStatus("f", "pi-1", True, 3, "", 10**9, 48.5, 4096, 2)
    assert decode_message(encode_message(status)) == status


def test_a_status_without_health_has_exactly_the_previous_fields_on_the_wire() -> None:
    wire = fields_to_wire(DeviceStatus("f", "pi-1", False, None))
    assert sorted(wire) == ["detail", "device_id", "fleet", "model_version", "online"]


def test_a_previous_release_status_decodes_with_no_health() -> None:
    old = {"fleet": "f", "device_id": "pi-1", "online": True, "model_version": 2, "detail": ""}
    parsed = fields_from_wire(DeviceStatus, old)
    assert parsed["cpu_temp_c"] is None and parsed["outbox_backlog"] is None


@pytest.mark.parametrize(
    "extra",
    [{"cpu_temp_c": float("nan")}, {"free_disk_bytes": -1}, {"outbox_backlog": "3"}, {"x": 1}],
)
def test_bad_or_unknown_health_is_refused(extra: dict[str, object]) -> None:
    raw = {"fleet": "f", "device_id": "pi-1", "online": True, "model_version": 2, "detail": "",
           **extra}  # fmt: skip
    with pytest.raises(ProtocolError):
        fields_from_wire(DeviceStatus, raw)
