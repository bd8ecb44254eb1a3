"""Property tests: whatever bytes arrive, the decoder raises only `FederationError` subclasses,
never accepts a tampered signed message, and never allocates far beyond the input size."""

from __future__ import annotations

import tracemalloc
from typing import Any
from unittest.mock import patch

import msgpack
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet_protocol import wire
from fleet_protocol.errors import FederationError
from fleet_protocol.messages import (
    DeviceStatus,
    FitConfig,
    ModelUpdate,
    RoundAnnouncement,
    UpdateAck,
)
from fleet_protocol.wire import decode_message, encode_message

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
SHAPES = [(4, 3), (3,)]
DELTA = [
    np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3),
    np.array([0.5, 0.0, -0.25], dtype=np.float32),
]
UPDATE = ModelUpdate("fleet", 2, 1, "dev-1", 9, 50, DELTA, {"loss": 0.3})
VALID = {codec: encode_message(UPDATE, codec=codec) for codec in ("float32", "float16", "int8")}
SPARSE_DELTA = [np.zeros((4, 3), np.float32), np.array([0.0, 0.0, -0.25], np.float32)]
SPARSE_DELTA[0][1, 2] = 0.75
SPARSE = ModelUpdate("fleet", 2, 1, "dev-1", 9, 50, SPARSE_DELTA, {"loss": 0.3})
VALID["int8-compact"] = encode_message(SPARSE, codec="int8", compact=True)
VALID["int8-compact-zstd"] = encode_message(UPDATE, codec="int8", compact=True, zstd=True)
SIGNED = encode_message(UPDATE, codec="int8", signing_key=KEY)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def device_key(signer: str) -> Ed25519PublicKey | None:
    """The only trusted device."""
    return KEY.public_key() if signer == "dev-1" else None


def try_decode(data: bytes, **options: Any) -> object | None:
    """Decode; return None on a `FederationError` (anything else fails the test)."""
    try:
        return decode_message(data, **options)
    except FederationError:
        return None


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_federation_errors(data: bytes) -> None:
    try_decode(data)
    try_decode(data, expected_shapes=SHAPES, verify_key=lambda _: KEY.public_key())


@FUZZ
@given(
    st.sampled_from(sorted(VALID)),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_mutated_valid_messages_only_raise_federation_errors(
    codec: str, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(VALID[codec])
    for position, value in edits:
        data[position % len(data)] = value
    try_decode(bytes(data))
    try_decode(bytes(data), expected_shapes=SHAPES)


@FUZZ
@given(st.integers(0, 10_000), st.integers(1, 255), st.integers(0, 40))
def test_truncated_or_extended_messages_only_raise_federation_errors(
    cut: int, filler: int, extra: int
) -> None:
    data = VALID["int8"]
    try_decode(data[: cut % len(data)])
    try_decode(data + bytes([filler]) * extra)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(
    st.sampled_from(["type", "fields", "tensors"]),
    st.sampled_from(
        [None, "dtype", "shape", "codec", "scale", "values", "indices", "index_coding"]
    ),
    msgpack_values,
)
def test_structurally_mutated_bodies_only_raise_federation_errors(
    body_key: str, tensor_key: str | None, value: Any
) -> None:
    envelope = msgpack.unpackb(VALID["int8"], raw=False)
    body = msgpack.unpackb(envelope["body"], raw=False)
    if tensor_key is None:
        body[body_key] = value
    else:
        body["tensors"][0][tensor_key] = value
    envelope["body"] = msgpack.packb(body, use_bin_type=True)
    try_decode(msgpack.packb(envelope, use_bin_type=True))


@FUZZ
@given(st.integers(0, 10_000), st.integers(1, 255))
def test_any_byte_flip_of_a_signed_message_is_rejected(position: int, flip: int) -> None:
    # Prepare
    data = bytearray(SIGNED)
    data[position % len(data)] ^= flip
    # Execute
    decoded = try_decode(bytes(data), verify_key=device_key)
    # Assert
    assert decoded is None


def test_huge_declared_shapes_do_not_allocate() -> None:
    # Prepare: a 200-byte message declaring a 10^12-element sparse tensor
    tensor = {"dtype": "float32", "shape": [10**6, 10**6], "codec": "int8", "scale": 1.0}
    tensor |= {"values": b"", "indices": b""}
    body = {"type": "model_update", "fields": {}, "tensors": [tensor]}
    envelope = {"v": 1, "body": msgpack.packb(body, use_bin_type=True)}
    data = msgpack.packb(envelope, use_bin_type=True)
    # Execute
    tracemalloc.start()
    result = try_decode(data)
    try_decode(VALID["int8"][:-1] + b"\x00" * 10, expected_shapes=[(10**5, 10**5), (3,)])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Assert
    assert result is None
    assert peak < 256 * 1024


SCALAR_MESSAGES = [
    RoundAnnouncement("fleet", 3, 2, "0" * 64, 1.7e9, 2, FitConfig(), "int8"),
    UpdateAck("fleet", 3, "dev-1", 9, True, ""),
    DeviceStatus("fleet", "dev-1", True, None, ""),
    UPDATE,
]
FIELD_NAMES = sorted(
    {
        name
        for m in SCALAR_MESSAGES
        for name in msgpack.unpackb(
            msgpack.unpackb(encode_message(m), raw=False)["body"], raw=False
        )["fields"]
    }
)


@FUZZ
@given(
    st.sampled_from(range(len(SCALAR_MESSAGES))),
    st.sampled_from(FIELD_NAMES),
    msgpack_values,
    st.booleans(),
)
def test_mutated_fields_only_raise_federation_errors(
    which: int, name: str, value: Any, nested: bool
) -> None:
    envelope = msgpack.unpackb(encode_message(SCALAR_MESSAGES[which]), raw=False)
    body = msgpack.unpackb(envelope["body"], raw=False)
    fields = body["fields"]
    target = fields["config"] if nested and "config" in fields else fields
    target[name] = value
    envelope["body"] = msgpack.packb(body, use_bin_type=True)
    try_decode(msgpack.packb(envelope, use_bin_type=True))


def _outcome(data: bytes) -> tuple[str, object]:
    """What decoding with the model's shapes gives: the error's type, or the delta's values."""
    try:
        message = decode_message(data, expected_shapes=SHAPES)
    except FederationError as exc:
        return ("refused", type(exc))
    assert isinstance(message, ModelUpdate)
    return ("decoded", [(t.shape, t.dtype, t.tobytes()) for t in message.delta])


dims = st.lists(st.integers(-1, 5) | st.booleans() | st.floats(0, 5), max_size=3)


@FUZZ
@given(
    st.sampled_from(["float32", "float16", "int8"]),
    st.integers(0, 1),
    st.sampled_from([None, "dtype", "shape", "codec", "scale", "values", "indices", "extra"]),
    msgpack_values | dims,
)
def test_the_dense_fast_path_decides_as_the_full_checks(
    codec: str, tensor: int, tensor_key: str | None, value: Any
) -> None:
    """Dense tensors of the expected shapes skip `EncodedTensor`; anything they accept the full
    path accepts with the same values, and anything else goes through the full path."""
    _check_fast_path(codec, tensor, tensor_key, value)


@pytest.mark.parametrize("codec", ["float32", "int8"])
@pytest.mark.parametrize(
    ("tensor_key", "value"),
    [(None, None), ("shape", [4.0, 3]), ("shape", [4, True]), ("shape", [3, 4]), ("shape", (4, 3)),
     ("scale", True), ("scale", 2), ("scale", -1.0), ("scale", float("nan")), ("codec", "int4"),
     ("dtype", "float64"), ("values", b"\x00"), ("values", "text"), ("indices", b"\x00\x00"),
     ("extra", 1)],
)  # fmt: skip
def test_the_dense_fast_path_decides_as_the_full_checks_in_known_cases(
    codec: str, tensor_key: str | None, value: Any
) -> None:
    _check_fast_path(codec, 0, tensor_key, value)


def _check_fast_path(codec: str, tensor: int, tensor_key: str | None, value: Any) -> None:
    envelope = msgpack.unpackb(VALID[codec], raw=False)
    body = msgpack.unpackb(envelope["body"], raw=False)
    if tensor_key is not None:
        body["tensors"][tensor][tensor_key] = value
    envelope["body"] = msgpack.packb(body, use_bin_type=True)
    data = msgpack.packb(envelope, use_bin_type=True)
    fast = _outcome(data)
    with patch.object(wire, "_expected_dense_tensors", lambda raw, shapes: None):
        full = _outcome(data)
    assert fast == full
