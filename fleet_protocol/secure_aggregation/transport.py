"""Secure aggregation phase messages on MQTT: topics, signed msgpack envelopes (never pickle).

Topics under `iomt/v1/{fleet}/sa/`: `config`, `keys`, `unmask` (aggregator -> all, retained)
and `inbox/<id>` (aggregator -> one device); `keys/<id>`, `shares/<id>`, `masked/<id>`,
`unmask/<id>` (device -> aggregator). Every payload is `{"v", "body", "signer", "sig"}` with an
Ed25519 signature over the body by its sender (the protocol's own `signing` helpers), so the
broker can neither forge a phase message nor swap one device's message for another's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.secure_aggregation.fixed_point import FixedPoint
from fleet_protocol.secure_aggregation.messages import (
    EncryptedShare,
    KeyAdvertisement,
    MaskedInput,
    SecAggConfig,
    UnmaskRequest,
    UnmaskResponse,
)
from fleet_protocol.signing import sign_body, verify_body
from fleet_protocol.topics import TOPIC_ROOT, validate_fleet
from fleet_protocol.wire import VerifyKey

VERSION = 1
# message kind -> topic level: broadcasts (retained), to one device, from devices
BROADCAST_TOPICS = {"config": "config", "keylist": "keys", "request": "unmask"}
DEVICE_TOPICS = {"keys": "keys", "shares": "shares", "masked": "masked", "response": "unmask"}
INBOX_TOPIC = "inbox"
MAX_PAYLOAD = 16 * 1024 * 1024


@dataclass(frozen=True)
class PhaseMessage:
    """A decoded, verified phase message: kind, round, sender, and its typed content."""

    kind: str
    round_id: int
    sender: str
    content: Any


def broadcast_topic(fleet: str, kind: str) -> str:
    return f"{TOPIC_ROOT}/{validate_fleet(fleet)}/sa/{kind}"


def device_topic(fleet: str, kind: str, device_id: str) -> str:
    return f"{TOPIC_ROOT}/{validate_fleet(fleet)}/sa/{kind}/{device_id}"


def subscription(fleet: str, kind: str) -> str:
    return f"{TOPIC_ROOT}/{validate_fleet(fleet)}/sa/{kind}/+"


def is_phase_topic(topic: str) -> bool:
    """True for `iomt/v1/{fleet}/sa/...` topics."""
    parts = topic.split("/")
    return len(parts) >= 5 and "/".join(parts[:2]) == TOPIC_ROOT and parts[3] == "sa"


def aggregator_subscriptions(fleet: str) -> tuple[str, ...]:
    """What the aggregator follows: every device's phase messages."""
    return tuple(subscription(fleet, level) for level in DEVICE_TOPICS.values())


def device_subscriptions(fleet: str, device_id: str) -> tuple[str, ...]:
    """What a device follows: the broadcast phases and its own inbox."""
    topics = [broadcast_topic(fleet, level) for level in BROADCAST_TOPICS.values()]
    return (*topics, device_topic(fleet, INBOX_TOPIC, device_id))


def _content_to_wire(kind: str, content: Any) -> Any:
    if isinstance(content, SecAggConfig):
        return [content.threshold, content.vector_length, content.context,
                content.fixed_point.frac_bits, content.example_unit]  # fmt: skip
    if isinstance(content, KeyAdvertisement):
        return [content.device_id, content.cipher_public, content.mask_public]
    if isinstance(content, MaskedInput):
        return [content.device_id, content.values.astype("<u4").tobytes()]
    if isinstance(content, UnmaskRequest):
        return [list(content.survivors), list(content.dropped)]
    if isinstance(content, UnmaskResponse):
        return [content.device_id, content.self_mask_shares, content.mask_key_shares]
    if isinstance(content, list):  # advertisements or sealed shares
        return [_content_to_wire(kind, item) if isinstance(item, KeyAdvertisement)
                else [item.sender, item.receiver, item.ciphertext] for item in content]  # fmt: skip
    raise SecureAggregationError(f"cannot encode {type(content).__name__}")


def encode_phase(kind: str, round_id: int, sender: str, content: Any,
                 signing_key: Ed25519PrivateKey | None) -> bytes:  # fmt: skip
    """A signed envelope around one phase message."""
    fields = {"sa": kind, "round": round_id, "from": sender,
              "content": _content_to_wire(kind, content)}  # fmt: skip
    body = msgpack.packb(fields, use_bin_type=True)
    envelope: dict[str, Any] = {"v": VERSION, "body": body}
    if signing_key is not None:
        envelope["signer"] = sender
        envelope["sig"] = sign_body(signing_key, VERSION, sender, body)
    return bytes(msgpack.packb(envelope, use_bin_type=True))


def decode_phase(payload: bytes, verify_key: VerifyKey | None) -> PhaseMessage:
    """Decode and (given `verify_key`) verify; raise `SecureAggregationError` on anything odd."""
    try:
        envelope = _unpack(payload)
        body = envelope["body"]
        if verify_key is not None:
            _verify(envelope, body, verify_key)
        fields = _unpack(body)
        kind, sender = str(fields["sa"]), str(fields["from"])
        if verify_key is not None and sender != envelope["signer"]:
            raise SecureAggregationError("phase message signed by someone else than its sender")
        content = _content_from_wire(kind, fields["content"])
        return PhaseMessage(kind, int(fields["round"]), sender, content)
    except SecureAggregationError:
        raise
    except Exception as exc:  # msgpack, key errors, bad types: one reason for the caller
        raise SecureAggregationError(f"malformed phase message: {exc}") from None


def _verify(envelope: dict[str, Any], body: bytes, verify_key: VerifyKey) -> None:
    signer, signature = envelope.get("signer"), envelope.get("sig")
    if not isinstance(signer, str) or not isinstance(signature, bytes):
        raise SecureAggregationError("phase message is not signed")
    key = verify_key(signer)
    if key is None:
        raise SecureAggregationError(f"phase message from untrusted signer {signer!r}")
    verify_body(key, VERSION, signer, body, signature)


def _unpack(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_PAYLOAD:
        raise SecureAggregationError("phase message too large")
    value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if not isinstance(value, dict):
        raise SecureAggregationError("phase message is not a map")
    return value


def _content_from_wire(kind: str, raw: Any) -> Any:
    if kind == "config":
        threshold, length, context, frac_bits, unit = raw
        return SecAggConfig(int(threshold), int(length), bytes(context),
                            FixedPoint(int(frac_bits)), float(unit))  # fmt: skip
    if kind == "keylist":
        return [KeyAdvertisement(str(d), bytes(c), bytes(m)) for d, c, m in raw]
    if kind == "keys":
        return KeyAdvertisement(str(raw[0]), bytes(raw[1]), bytes(raw[2]))
    if kind in ("shares", "inbox"):
        return [EncryptedShare(str(s), str(r), bytes(c)) for s, r, c in raw]
    if kind == "masked":
        return MaskedInput(str(raw[0]), np.frombuffer(bytes(raw[1]), "<u4").astype(np.uint32))
    if kind == "request":
        return UnmaskRequest(tuple(map(str, raw[0])), tuple(map(str, raw[1])))
    if kind == "response":
        return UnmaskResponse(str(raw[0]), dict(raw[1]), dict(raw[2]))
    raise SecureAggregationError(f"unknown phase {kind!r}")
