"""Pure accept/reject decisions of the aggregator, and the device registry file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aggregator.device_registry import DeviceRegistry, RegistryError, parse_public_key
from aggregator.update_validation import (
    DeviceHistory,
    OpenRound,
    check_update,
    is_resend_of_accepted,
    reason_for_error,
)
from fleet_protocol.errors import (
    MalformedMessageError,
    ShapeMismatchError,
    SignatureError,
    UnknownSignerError,
)
from fleet_protocol.messages import ModelUpdate

OPEN = OpenRound("fleet", round_id=3, base_version=2)
FRESH = DeviceHistory(None, None, None)


def _update(**changes: object) -> ModelUpdate:
    fields = {"fleet": "fleet", "round_id": 3, "base_version": 2, "device_id": "a",
              "sequence": 5, "num_examples": 10, "delta": [np.zeros(2, np.float32)]}  # fmt: skip
    fields.update(changes)
    return ModelUpdate(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "history", "reason"),
    [
        ({}, FRESH, None),
        ({"round_id": 2}, FRESH, "stale"),
        ({"base_version": 1}, FRESH, "stale"),
        ({"fleet": "other"}, FRESH, "wrong_topic"),
        ({"device_id": "b"}, FRESH, "wrong_topic"),
        ({}, DeviceHistory(5, "sha", 5), "duplicate"),
        ({}, DeviceHistory(None, None, 5), "replayed"),
        ({}, DeviceHistory(None, None, 9), "replayed"),
        ({}, DeviceHistory(None, None, 4), None),
    ],
)
def test_check_update_names_the_reason(changes, history, reason) -> None:  # type: ignore[no-untyped-def]
    assert check_update(_update(**changes), "a", OPEN, history) == reason


def test_a_resend_is_recognised_by_its_digest() -> None:
    assert is_resend_of_accepted(DeviceHistory(5, "abc", 5), "abc")
    assert not is_resend_of_accepted(DeviceHistory(5, "abc", 5), "abd")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (MalformedMessageError("x"), "malformed"),
        (ShapeMismatchError("x"), "wrong_shape"),
        (SignatureError("x"), "unauthenticated"),
        (UnknownSignerError("x"), "unauthenticated"),
    ],
)
def test_decode_errors_map_to_counted_reasons(error, reason) -> None:  # type: ignore[no-untyped-def]
    assert reason_for_error(error) == reason


def test_registry_add_revoke_round_trips_atomically(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "fleet.json"
    registry = DeviceRegistry.load(path, missing_ok=True)

    # Execute
    registry.add("dev1", bytes(range(32)), now=1.0)
    registry.add("dev2", bytes(32), now=2.0)
    registry.revoke("dev2")
    registry.save()
    reloaded = DeviceRegistry.load(path)

    # Assert
    assert reloaded.trusted_keys() == {"dev1": bytes(range(32))}
    assert reloaded.status_of("dev2") == "revoked"
    assert reloaded.status_of("nobody") == "unknown"
    assert json.loads(path.read_text())["schema"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind


def test_registry_refuses_bad_keys_and_ids(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path / "r.json")
    with pytest.raises(RegistryError):
        parse_public_key("abcd")
    with pytest.raises(RegistryError):
        parse_public_key("zz" * 32)
    with pytest.raises(RegistryError):
        registry.revoke("ghost")
    with pytest.raises(Exception, match="device id"):
        registry.add("bad/id", bytes(32))


def test_registry_unreadable_file_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("{not json")
    with pytest.raises(RegistryError, match="unreadable"):
        DeviceRegistry.load(path)
