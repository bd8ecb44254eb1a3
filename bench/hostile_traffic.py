"""The hostile messages `python -m bench hostile` throws at an aggregator, by kind (pure).

Each kind is what an attacker holding one device identity (one certificate, one registered
key) or none could publish on the fleet's topics. `build_flood` interleaves the kinds over a
few sender ids, so both the per-kind checks and the per-sender budgets are exercised.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet_protocol.chunking import MAGIC, split_into_chunks
from fleet_protocol.messages import DeviceStatus, ModelUpdate
from fleet_protocol.topics import status_topic, update_topic
from fleet_protocol.types import Weights
from fleet_protocol.wire import encode_message

KINDS = (
    "garbage",  # bytes that are no envelope
    "big_garbage",  # 200 KB of them: memory pressure
    "huge_update",  # well-formed, signed, finite delta of 1e38 (bricked FedAvg before)
    "stale_update",  # signed, for a round that is not open
    "wrong_topic",  # another device's update re-published under the sender's topic
    "fragment",  # first chunk of a message that never completes, distinct ids
    "oversize_chunk",  # a chunk declaring a 100 MB message
    "fake_status",  # "online" statuses of made-up devices
)


@dataclass(frozen=True)
class HostileMessage:
    """One message to publish, and its kind."""

    kind: str
    topic: str
    payload: bytes


@dataclass(frozen=True)
class FloodPlan:
    """Who floods which fleet, on which round, with which shapes."""

    fleet: str
    round_id: int
    base_version: int
    shapes: list[tuple[int, ...]]
    senders: dict[str, Ed25519PrivateKey]  # registered identities the attacker holds


def _update(plan: FloodPlan, sender: str, value: float, round_id: int, seq: int) -> bytes:
    delta: Weights = [np.full(shape, value, np.float32) for shape in plan.shapes]
    update = ModelUpdate(plan.fleet, round_id, plan.base_version, sender, seq, 10, delta)
    return encode_message(update, codec="float32", signing_key=plan.senders[sender])


def _oversize_chunk(message_id: str) -> bytes:
    raw = message_id.encode()
    header = MAGIC + bytes([1, len(raw)]) + raw
    return header + struct.pack(">IIII", 0, 1000, 100_000_000, 0) + b"x" * 64


def hostile_message(plan: FloodPlan, kind: str, sender: str, index: int) -> HostileMessage:
    """Message number `index` of `kind`, sent as `sender`."""
    topic = update_topic(plan.fleet, sender)
    if kind == "garbage":
        return HostileMessage(kind, topic, b"\x00garbage" + index.to_bytes(4, "big"))
    if kind == "big_garbage":
        return HostileMessage(kind, topic, b"\x01" * 200_000)
    if kind == "huge_update":
        return HostileMessage(kind, topic, _update(plan, sender, 1e38, plan.round_id, index + 1))
    if kind == "stale_update":
        return HostileMessage(kind, topic, _update(plan, sender, 0.01, plan.round_id + 7, index))
    if kind == "wrong_topic":
        other = next(s for s in plan.senders if s != sender)
        return HostileMessage(kind, topic, _update(plan, other, 0.01, plan.round_id, index))
    if kind == "fragment":
        chunk = split_into_chunks(b"f" * 400, f"frag-{index}", max_chunk_bytes=120)[0]
        return HostileMessage(kind, topic, chunk)
    if kind == "oversize_chunk":
        return HostileMessage(kind, topic, _oversize_chunk(f"big-{index}"))
    made_up = f"ghost-{index}"
    status = encode_message(DeviceStatus(plan.fleet, made_up, True, 0))
    return HostileMessage(kind, status_topic(plan.fleet, made_up), status)


def build_flood(plan: FloodPlan, total: int) -> list[HostileMessage]:
    """`total` messages cycling through every kind and every sender."""
    senders = itertools.cycle(sorted(plan.senders))
    kinds = itertools.cycle(KINDS)
    return [hostile_message(plan, next(kinds), next(senders), i) for i in range(total)]
