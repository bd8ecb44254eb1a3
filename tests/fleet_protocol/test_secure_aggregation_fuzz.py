"""Property tests of the secure-aggregation phase codec: whatever bytes arrive, `decode_phase`
raises only `SecureAggregationError`; with a verifier, a tampered signed message never decodes;
a well-formed message of every phase decodes to what was sent."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from fleet_protocol.secure_aggregation.transport import decode_phase, encode_phase

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTENTS: dict[str, Any] = {
    "config": SecAggConfig(2, 8, b"ctx", FixedPoint(16), 1.0),
    "keys": KeyAdvertisement("dev-1", b"c" * 32, b"m" * 32),
    "keylist": [KeyAdvertisement("dev-1", b"c" * 32, b"m" * 32)],
    "shares": [EncryptedShare("dev-1", "dev-2", b"sealed")],
    "inbox": [EncryptedShare("dev-2", "dev-1", b"sealed")],
    "masked": MaskedInput("dev-1", np.arange(8, dtype=np.uint32)),
    "request": UnmaskRequest(("dev-1",), ("dev-2",)),
    "response": UnmaskResponse("dev-1", {"dev-2": b"s"}, {"dev-3": b"k"}),
}
SIGNED = {kind: encode_phase(kind, 3, "dev-1", c, KEY) for kind, c in CONTENTS.items()}


def trusted(signer: str) -> Ed25519PublicKey | None:
    return KEY.public_key() if signer == "dev-1" else None


def _decodes_or_refuses(payload: bytes, verify: Any = None) -> Any:
    try:
        return decode_phase(payload, verify)
    except SecureAggregationError:
        return None


def test_every_phase_round_trips_signed() -> None:
    for kind, payload in SIGNED.items():
        message = decode_phase(payload, trusted)
        assert (message.kind, message.round_id, message.sender) == (kind, 3, "dev-1")


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_secure_aggregation_errors(data: bytes) -> None:
    _decodes_or_refuses(data)
    _decodes_or_refuses(data, trusted)


@FUZZ
@given(st.sampled_from(sorted(SIGNED)), st.data())
def test_a_tampered_signed_message_never_decodes_under_a_verifier(kind: str, data: Any) -> None:
    payload = bytearray(SIGNED[kind])
    index = data.draw(st.integers(0, len(payload) - 1))
    payload[index] ^= data.draw(st.integers(1, 255))
    result = _decodes_or_refuses(bytes(payload), trusted)
    original = decode_phase(SIGNED[kind], trusted)  # a flip msgpack decodes the same is harmless
    assert result is None or repr(result) == repr(original)


LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True),
    st.text(max_size=8), st.binary(max_size=16),
)  # fmt: skip


def _containers(inner: Any) -> Any:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)


VALUES = st.recursive(LEAVES, _containers, max_leaves=12)


@FUZZ
@given(st.sampled_from(sorted(CONTENTS)), VALUES, VALUES)
def test_structurally_altered_bodies_raise_only_secure_aggregation_errors(
    kind: str, content: Any, round_id: Any
) -> None:
    body = msgpack.packb({"sa": kind, "round": round_id, "from": "dev-1", "content": content},
                         use_bin_type=True)  # fmt: skip
    _decodes_or_refuses(msgpack.packb({"v": 1, "body": body}, use_bin_type=True))


@FUZZ
@given(st.sampled_from(sorted(SIGNED)), st.integers(0, 200))
def test_truncated_messages_raise_only_secure_aggregation_errors(kind: str, cut: int) -> None:
    payload = SIGNED[kind]
    _decodes_or_refuses(payload[: max(0, len(payload) - 1 - cut)], trusted)
