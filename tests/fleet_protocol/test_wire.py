"""The envelope: round trips of every message, signatures, and one precise error per fault."""

from __future__ import annotations

from collections.abc import Callable

import msgpack
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fleet_protocol.errors import (
    MalformedMessageError,
    MessageTooLargeError,
    MessageTypeError,
    NonFiniteValueError,
    ProtocolVersionError,
    ShapeMismatchError,
    SignatureError,
    UnknownSignerError,
)
from fleet_protocol.messages import (
    DeviceStatus,
    FitConfig,
    GlobalModel,
    ModelUpdate,
    RoundAnnouncement,
    UpdateAck,
)
from fleet_protocol.topics import AGGREGATOR_ID
from fleet_protocol.wire import (
    PROTOCOL_VERSION,
    decode_message,
    encode_message,
    message_sha256,
)

SHAPES = [(3, 2), (2,)]


def gen_delta(scale: float = 0.1) -> list[np.ndarray]:
    """A tiny literal two-tensor delta."""
    return [
        np.array([[0.1, -0.2], [0.3, 0.0], [-0.05, 0.4]], dtype=np.float32) * scale * 10,
        np.array([0.01, -0.02], dtype=np.float32),
    ]


def gen_update(device_id: str = "dev-1", delta: list[np.ndarray] | None = None) -> ModelUpdate:
    """A model update of `device_id` for round 3."""
    return ModelUpdate(
        "ward-7", 3, 2, device_id, 11, 120, delta or gen_delta(), {"loss": 0.41, "acc": 0.9}
    )


def registry(**keys: Ed25519PrivateKey) -> Callable[[str], Ed25519PublicKey | None]:
    """A verify_key callback over device id -> private key."""
    return lambda signer: keys[signer].public_key() if signer in keys else None


def repack_envelope(data: bytes, **changes: object) -> bytes:
    """Rewrite envelope fields (to forge or corrupt a valid message)."""
    envelope = msgpack.unpackb(data, raw=False)
    envelope.update(changes)
    return bytes(msgpack.packb(envelope, use_bin_type=True))


def repack_body(data: bytes, edit: Callable[[dict], None]) -> bytes:
    """Rewrite the body of an unsigned envelope."""
    envelope = msgpack.unpackb(data, raw=False)
    body = msgpack.unpackb(envelope["body"], raw=False)
    edit(body)
    envelope["body"] = msgpack.packb(body, use_bin_type=True)
    return bytes(msgpack.packb(envelope, use_bin_type=True))


def test_model_update_round_trip_float32_is_exact() -> None:
    # Prepare
    update = gen_update()
    # Execute
    decoded = decode_message(encode_message(update), expected_type=ModelUpdate)
    # Assert
    assert isinstance(decoded, ModelUpdate)
    assert (decoded.fleet, decoded.round_id, decoded.device_id, decoded.sequence) == (
        "ward-7",
        3,
        "dev-1",
        11,
    )
    assert decoded.num_examples == 120 and decoded.metrics == {"loss": 0.41, "acc": 0.9}
    for got, want in zip(decoded.delta, update.delta, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "message",
    [
        RoundAnnouncement("f", 1, 0, "ab" * 32, 1.7e9, 3, FitConfig(proximal_mu=0.1), "int8"),
        UpdateAck("f", 1, "dev-2", 5, False, "stale"),
        DeviceStatus("f", "dev-2", True, 4, "ok"),
        DeviceStatus("f", "dev-2", False, None, "last will"),
    ],
)
def test_scalar_messages_round_trip(message: object) -> None:
    # Execute
    decoded = decode_message(encode_message(message))  # type: ignore[arg-type]
    # Assert
    assert decoded == message


def test_global_model_round_trip_keeps_hash() -> None:
    # Prepare
    weights = gen_delta()
    model = GlobalModel("f", 4, weights, None, 3)
    # Execute
    decoded = decode_message(encode_message(model), expected_shapes=SHAPES)
    # Assert
    assert isinstance(decoded, GlobalModel) and decoded.parent_version is None
    assert message_sha256(decoded.weights) == message_sha256(weights)


def test_message_sha256_depends_on_shape_and_values() -> None:
    # Prepare
    flat = [np.arange(6, dtype=np.float32)]
    # Execute / Assert
    assert message_sha256(flat) != message_sha256([flat[0].reshape(2, 3)])
    assert message_sha256(flat) != message_sha256([flat[0] + 1])
    assert len(message_sha256(flat)) == 64


def test_int8_update_is_smaller_and_close() -> None:
    # Prepare
    rng = np.random.default_rng(0)
    delta = [rng.normal(size=(136, 32)).astype(np.float32) * 0.01]
    # Execute
    as_float = encode_message(gen_update(delta=delta))
    as_int8 = encode_message(gen_update(delta=delta), codec="int8", rng=rng)
    decoded = decode_message(as_int8)
    # Assert
    assert len(as_int8) < len(as_float) / 3.5
    assert isinstance(decoded, ModelUpdate)
    step = np.abs(delta[0]).max() / 127
    assert np.abs(decoded.delta[0] - delta[0]).max() <= step * (1 + 1e-6)


def test_signed_update_verifies_with_device_key() -> None:
    # Prepare
    key = Ed25519PrivateKey.generate()
    data = encode_message(gen_update(), signing_key=key)
    # Execute
    decoded = decode_message(data, verify_key=registry(**{"dev-1": key}))
    # Assert
    assert isinstance(decoded, ModelUpdate)


def test_tampered_body_fails_signature() -> None:
    # Prepare
    key = Ed25519PrivateKey.generate()
    data = encode_message(gen_update(), signing_key=key)
    body = bytearray(msgpack.unpackb(data, raw=False)["body"])
    body[-3] ^= 0x01  # a byte inside the last tensor's values
    # Execute / Assert
    with pytest.raises(SignatureError):
        decode_message(
            repack_envelope(data, body=bytes(body)), verify_key=registry(**{"dev-1": key})
        )


def test_unsigned_message_rejected_when_verification_required() -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(SignatureError):
        decode_message(encode_message(gen_update()), verify_key=registry(**{"dev-1": key}))


def test_unknown_signer_rejected() -> None:
    key = Ed25519PrivateKey.generate()
    data = encode_message(gen_update("dev-9"), signing_key=key)
    with pytest.raises(UnknownSignerError):
        decode_message(data, verify_key=registry(**{"dev-1": key}))


def test_device_cannot_sign_for_another_device() -> None:
    # Prepare: dev-2 signs an update claiming to be dev-1 and relabels the signer
    key_1, key_2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    forged = encode_message(gen_update("dev-1"), signing_key=key_2)
    relabelled = repack_envelope(forged, signer="dev-2")
    keys = registry(**{"dev-1": key_1, "dev-2": key_2})
    # Execute / Assert
    with pytest.raises(SignatureError):
        decode_message(forged, verify_key=keys)
    with pytest.raises(SignatureError):
        decode_message(relabelled, verify_key=keys)


def test_device_cannot_sign_a_global_model() -> None:
    # Prepare
    device_key = Ed25519PrivateKey.generate()
    forged = encode_message(GlobalModel("f", 9, gen_delta(), 8, 9), signing_key=device_key)
    # Execute / Assert: signer is "aggregator" but the key is the device's
    with pytest.raises(SignatureError):
        decode_message(forged, verify_key=registry(**{AGGREGATOR_ID: Ed25519PrivateKey.generate()}))


def test_future_protocol_version_rejected() -> None:
    data = repack_envelope(encode_message(gen_update()), v=PROTOCOL_VERSION + 1)
    with pytest.raises(ProtocolVersionError):
        decode_message(data)


def test_oversize_message_rejected_before_parsing() -> None:
    with pytest.raises(MessageTooLargeError):
        decode_message(encode_message(gen_update()), max_bytes=64)


def test_wrong_expected_type_rejected() -> None:
    with pytest.raises(MessageTypeError):
        decode_message(encode_message(gen_update()), expected_type=GlobalModel)


def test_unknown_type_rejected() -> None:
    data = repack_body(encode_message(gen_update()), lambda b: b.update(type="pickle"))
    with pytest.raises(MessageTypeError):
        decode_message(data)


def test_shape_differs_from_announced_model() -> None:
    with pytest.raises(ShapeMismatchError):
        decode_message(encode_message(gen_update()), expected_shapes=[(2, 3), (2,)])


def test_declared_shape_larger_than_bytes_rejected() -> None:
    def grow(body: dict) -> None:
        body["tensors"][0]["shape"] = [3000, 2000]

    with pytest.raises(MalformedMessageError):
        decode_message(repack_body(encode_message(gen_update()), grow))


def test_sparse_tensor_cannot_declare_unbounded_elements() -> None:
    def balloon(body: dict) -> None:
        body["tensors"][1] = {
            "dtype": "float32",
            "shape": [2**31, 2**31],
            "codec": "int8",
            "scale": 0.0,
            "values": b"",
            "indices": b"",
        }

    with pytest.raises(MessageTooLargeError):
        decode_message(repack_body(encode_message(gen_update()), balloon))


def test_nan_in_tensor_rejected() -> None:
    def poison(body: dict) -> None:
        body["tensors"][1]["values"] = np.array([np.nan, 0], dtype="<f4").tobytes()

    with pytest.raises(NonFiniteValueError):
        decode_message(repack_body(encode_message(gen_update()), poison))


def test_missing_and_extra_fields_rejected() -> None:
    base = encode_message(gen_update())
    with pytest.raises(MalformedMessageError):
        decode_message(repack_body(base, lambda b: b["fields"].pop("sequence")))
    with pytest.raises(MalformedMessageError):
        decode_message(repack_body(base, lambda b: b["fields"].update(admin=True)))


@pytest.mark.parametrize(
    ("field", "value"),
    [("sequence", -1), ("num_examples", True), ("device_id", "a/b"), ("fleet", "#")],
)
def test_bad_field_values_rejected(field: str, value: object) -> None:
    data = repack_body(encode_message(gen_update()), lambda b: b["fields"].update({field: value}))
    with pytest.raises(MalformedMessageError):
        decode_message(data)


def test_non_msgpack_and_non_map_rejected() -> None:
    for junk in (b"", b"\xc1", msgpack.packb([1, 2, 3]), b"\x81\xa1v"):
        with pytest.raises(MalformedMessageError):
            decode_message(junk)


def test_update_without_tensors_fails_expected_shapes() -> None:
    data = repack_body(encode_message(gen_update()), lambda b: b.update(tensors=[]))
    with pytest.raises(ShapeMismatchError):
        decode_message(data, expected_shapes=SHAPES)


def test_update_with_zero_examples_rejected() -> None:
    data = repack_body(encode_message(gen_update()), lambda b: b["fields"].update(num_examples=0))
    with pytest.raises(MalformedMessageError):
        decode_message(data)


@pytest.mark.parametrize(("field", "value"), [("model_sha256", "xyz"), ("codec", "bf16")])
def test_round_announcement_rejects_bad_hash_and_codec(field: str, value: str) -> None:
    announcement = RoundAnnouncement("f", 1, 0, "ab" * 32, 1.7e9, 3)
    data = repack_body(encode_message(announcement), lambda b: b["fields"].update({field: value}))
    with pytest.raises(MalformedMessageError):
        decode_message(data)
