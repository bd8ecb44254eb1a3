"""Decide whether an incoming update may be folded into the open round (pure, no I/O).

The service decodes bytes with `protocol.wire` and asks `check_update` with what it knows
(the open round, what the store already holds); the answer is a reason code to count, or None.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet_protocol.errors import FederationError
from fleet_protocol.messages import ModelUpdate

REJECTION_REASONS = (
    "malformed",
    "wrong_shape",
    "unauthenticated",
    "stale",
    "too_stale",  # asynchronous mode: trained on a version older than the staleness cap
    "duplicate",
    "replayed",
    "wrong_topic",
    "out_of_bounds",  # the rest are decided by the core and its gate, not by `check_update`
    "rate_limited",
    "unknown_device",
    "chunk_expired",
    "chunk_evicted",
    "queue_full",
    "head_non_finite",
    "head_out_of_bounds",
    "head_rolled_back",
)

_ERROR_REASONS = {
    "shape": "wrong_shape",
    "signature": "unauthenticated",
    "unknown_signer": "unauthenticated",
}


def reason_for_error(error: FederationError) -> str:
    """Map a decode error to one of `REJECTION_REASONS`."""
    return _ERROR_REASONS.get(error.reason, "malformed")


@dataclass(frozen=True)
class OpenRound:
    """What validation needs to know about the round being collected."""

    fleet: str
    round_id: int
    base_version: int


@dataclass(frozen=True)
class DeviceHistory:
    """What the store already holds for the sending device."""

    accepted_this_round_sequence: int | None  # sequence of its accepted update this round
    accepted_this_round_sha256: str | None
    last_sequence: int | None  # highest sequence ever accepted from it


def check_update(
    update: ModelUpdate,
    topic_device_id: str,
    open_round: OpenRound,
    history: DeviceHistory,
) -> str | None:
    """None when the update is new and for this round, else the rejection reason."""
    if update.device_id != topic_device_id or update.fleet != open_round.fleet:
        return "wrong_topic"
    if update.round_id != open_round.round_id or update.base_version != open_round.base_version:
        return "stale"
    if history.accepted_this_round_sequence is not None:
        return "duplicate"
    if history.last_sequence is not None and update.sequence <= history.last_sequence:
        return "replayed"
    return None


def is_resend_of_accepted(history: DeviceHistory, payload_sha256: str) -> bool:
    """The very bytes we already stored and acked (a device resending after no ack)."""
    return history.accepted_this_round_sha256 == payload_sha256
