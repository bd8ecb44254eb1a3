"""MQTT topic names under `iomt/v1/{fleet}/` and validation of the ids inside them."""

from __future__ import annotations

import re
from typing import NamedTuple

from fleet_protocol.errors import TopicError

TOPIC_ROOT = "iomt/v1"
AGGREGATOR_ID = "aggregator"
"""Signer id of messages the aggregator sends; reserved, never a device id."""

TOPIC_KINDS = ("round", "model", "patch", "update", "status", "ack", "partial")
_KINDS_WITH_ARG = frozenset({"model", "patch", "update", "status", "ack", "partial"})
_KINDS_WITH_VERSION = frozenset({"model", "patch"})
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_REMEMBERED_IDS = 100_000
_VALID_IDS: set[str] = set()  # ids that passed `_ID_PATTERN` (the pattern does not change)


class ParsedTopic(NamedTuple):
    """A topic split into its parts; `arg` is the version or device id (None for `round`)."""

    fleet: str
    kind: str
    arg: str | None


def validate_fleet(fleet: str) -> str:
    """Return `fleet` if it is a safe topic level (letters, digits, `._-`, 1-64 chars)."""
    return _validate_id(fleet, "fleet")


def validate_device_id(device_id: str) -> str:
    """Return `device_id` if it is a safe topic level and not the reserved aggregator id."""
    _validate_id(device_id, "device id")
    if device_id == AGGREGATOR_ID:
        raise TopicError(f"device id {device_id!r} is reserved for the aggregator")
    return device_id


def validate_device_ids(device_ids: tuple[str, ...]) -> None:
    """`validate_device_id` of each id (strings): those already seen cost one set difference.

    A partial sum names every device of its signer's share, and arrives several times a round.
    """
    for device_id in set(device_ids) - _VALID_IDS:
        validate_device_id(device_id)
    if AGGREGATOR_ID in device_ids:
        validate_device_id(AGGREGATOR_ID)


def _validate_id(value: object, what: str) -> str:
    if isinstance(value, str) and value in _VALID_IDS:  # a fleet's ids recur in every message
        return value
    if not isinstance(value, str) or _ID_PATTERN.fullmatch(value) is None:
        raise TopicError(f"invalid {what} {value!r}: use 1-64 letters, digits, '.', '_', '-'")
    if len(_VALID_IDS) < _MAX_REMEMBERED_IDS:
        _VALID_IDS.add(value)
    return value


def _validate_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise TopicError(f"invalid model version {version!r}: expected an integer >= 0")
    return version


def round_topic(fleet: str) -> str:
    """Retained round announcement of a fleet."""
    return f"{TOPIC_ROOT}/{validate_fleet(fleet)}/round"


def model_topic(fleet: str, version: int) -> str:
    """Retained global model of one version."""
    return f"{TOPIC_ROOT}/{validate_fleet(fleet)}/model/{_validate_version(version)}"


def patch_topic(fleet: str, version: int) -> str:
    """Retained patch of one version against its parent (`fleet_protocol.model_patch`)."""
    return f"{TOPIC_ROOT}/{validate_fleet(fleet)}/patch/{_validate_version(version)}"


def update_topic(fleet: str, device_id: str) -> str:
    """Where a device publishes its model updates."""
    return f"{TOPIC_ROOT}/{validate_fleet(fleet)}/update/{validate_device_id(device_id)}"


def status_topic(fleet: str, device_id: str) -> str:
    """Retained online/offline status of a device (also its last will)."""
    return f"{TOPIC_ROOT}/{validate_fleet(fleet)}/status/{validate_device_id(device_id)}"


def ack_topic(fleet: str, device_id: str) -> str:
    """Where the aggregator acknowledges (or rejects) a device's update."""
    return f"{TOPIC_ROOT}/{validate_fleet(fleet)}/ack/{validate_device_id(device_id)}"


def partial_topic(fleet: str, signer_id: str) -> str:
    """Retained signed partial sum of a worker or a site aggregator (`partial_sum`)."""
    return f"{TOPIC_ROOT}/{validate_fleet(fleet)}/partial/{validate_device_id(signer_id)}"


def subscription_topic(fleet: str, kind: str) -> str:
    """MQTT filter for every topic of one kind in a fleet, e.g. `iomt/v1/F/update/+`."""
    if kind not in TOPIC_KINDS:
        raise TopicError(f"unknown topic kind {kind!r}; expected one of {', '.join(TOPIC_KINDS)}")
    suffix = "/+" if kind in _KINDS_WITH_ARG else ""
    return f"{TOPIC_ROOT}/{validate_fleet(fleet)}/{kind}{suffix}"


def parse_topic(topic: str) -> ParsedTopic:
    """Split a concrete topic into (fleet, kind, arg), validating every level."""
    levels = topic.split("/") if isinstance(topic, str) else []
    if len(levels) < 4 or "/".join(levels[:2]) != TOPIC_ROOT:
        raise TopicError(f"not an {TOPIC_ROOT} topic: {topic!r}")
    fleet, kind, rest = validate_fleet(levels[2]), levels[3], levels[4:]
    if kind == "round" and not rest:
        return ParsedTopic(fleet, kind, None)
    if kind not in _KINDS_WITH_ARG or len(rest) != 1:
        raise TopicError(f"unknown topic layout: {topic!r}")
    if kind in _KINDS_WITH_VERSION:
        if not rest[0].isdigit() or len(rest[0]) > 18:
            raise TopicError(f"invalid model version in topic {topic!r}")
        return ParsedTopic(fleet, kind, rest[0])
    return ParsedTopic(fleet, kind, validate_device_id(rest[0]))
