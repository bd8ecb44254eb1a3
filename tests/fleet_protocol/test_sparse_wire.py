"""Compact sparse deltas on the wire: index codings, zstd bodies, the `--codec` text.

Round trips are property tests; every hostile index or body is refused with one line.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest
import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_protocol.errors import (
    CodecError,
    MalformedMessageError,
    MessageTooLargeError,
    SignatureError,
    SparseIndexError,
)
from fleet_protocol.messages import FitConfig, GlobalModel, ModelUpdate, RoundAnnouncement
from fleet_protocol.sparse_indices import BITMAP, VARINT, decode_indices, encode_indices
from fleet_protocol.tensor_codecs import EncodedTensor, decode_tensor, encode_tensor
from fleet_protocol.update_encoding import (
    UpdateEncoding,
    announced_encoding,
    parse_update_encoding,
)
from fleet_protocol.wire import decode_message, encode_message

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
SHA = "ab" * 32


@st.composite
def sparse_positions(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    size = draw(st.integers(1, 5000))
    chosen = draw(st.sets(st.integers(0, size - 1), max_size=min(size, 400)))
    return np.array(sorted(chosen), dtype=np.int64), size


@settings(max_examples=200, deadline=None)
@given(sparse_positions())
def test_index_codings_round_trip_and_take_the_smaller(case: tuple[np.ndarray, int]) -> None:
    # Prepare
    positions, size = case
    # Execute
    coding, raw = encode_indices(positions, size)
    decoded = decode_indices(coding, raw, size, positions.size)
    # Assert
    np.testing.assert_array_equal(decoded, positions)
    assert len(raw) <= (size + 7) // 8 or coding == VARINT


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3000), st.floats(0.0, 1.0), st.integers(0, 2**16), st.booleans())
def test_sparse_tensors_round_trip_with_compact_indices(
    size: int, density: float, seed: int, stochastic: bool
) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    tensor = rng.normal(size=size).astype(np.float32) * (rng.random(size) < density)
    # Execute
    encoded = encode_tensor(tensor, "int8", rng if stochastic else None, compact_indices=True)
    decoded = decode_tensor(encoded)
    # Assert
    step = encoded.scale
    assert np.all(np.abs(decoded - tensor) <= step * (1.0 if stochastic else 0.5) + 1e-7)
    assert np.all(decoded[tensor == 0] == 0)


def test_a_bitmap_is_chosen_for_denser_tensors_and_varints_for_sparser() -> None:
    # Prepare
    size = 1000
    dense_ish, sparse = np.arange(0, size, 3), np.arange(0, size, 50)
    # Execute
    codings = [encode_indices(p, size)[0] for p in (dense_ish, sparse)]
    # Assert
    assert codings == [BITMAP, VARINT]


@pytest.mark.parametrize(
    ("coding", "raw", "count", "why"),
    [
        (VARINT, b"\x05\x80", 2, "end inside a varint"),
        (VARINT, b"\x05\x00", 2, "duplicate sparse index 5"),
        (VARINT, b"\x05\x81\x80\x80\x80\x80\x01", 2, "longer than 5 bytes"),
        (VARINT, b"\x05\x80\x00", 2, "shortest form"),
        (VARINT, b"\x05\x05", 2, "out of range"),
        (VARINT, b"\x01\x01\x01", 2, "3 indices for 2 values"),
        (BITMAP, b"\x01", 1, "takes 2 bytes"),
        (BITMAP, b"\x01\x80", 2, "past the end"),
        (BITMAP, b"\x03\x00", 1, "2 indices for 1 values"),
        ("rle", b"\x00", 1, "unknown index coding"),
    ],
)
def test_hostile_indices_are_refused_with_a_reason(
    coding: str, raw: bytes, count: int, why: str
) -> None:
    # Execute
    with pytest.raises(SparseIndexError, match=why) as refused:
        decode_indices(coding, raw, 9, count)
    # Assert
    assert refused.value.reason == "sparse_index"


def test_a_tensor_with_more_coded_indices_than_elements_is_refused_before_decoding() -> None:
    # Prepare: 20 one-byte varints for a 9-element tensor
    encoded = EncodedTensor("int8", (9,), 0.1, bytes(20), b"\x01" * 20, VARINT)
    # Execute / Assert
    with pytest.raises(SparseIndexError, match="20 indices for 9 elements"):
        decode_tensor(encoded)


def _update(delta: list[np.ndarray]) -> ModelUpdate:
    return ModelUpdate("fleet", 3, 2, "dev-1", 4, 20, delta, {"loss": 0.5})


def _sparse_delta(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(64, 16)).astype(np.float32) * (rng.random((64, 16)) < 0.05)
    return [kernel, np.linspace(-1, 1, 16, dtype=np.float32)]


def test_a_signed_compact_zstd_update_decodes_and_is_smaller() -> None:
    # Prepare
    update = _update(_sparse_delta())
    # Execute
    raw = encode_message(update, codec="int8", signing_key=KEY)
    compact = encode_message(update, codec="int8", signing_key=KEY, compact=True, zstd=True)
    decoded = decode_message(compact, expected_type=ModelUpdate, expected_shapes=[(64, 16), (16,)],
                             verify_key=lambda _: KEY.public_key())  # fmt: skip
    # Assert
    assert isinstance(decoded, ModelUpdate)
    assert msgpack.unpackb(compact)["z"] == "zstd"
    assert len(compact) < len(raw)
    plain = decode_message(raw)
    assert isinstance(plain, ModelUpdate)
    for ours, theirs in zip(decoded.delta, plain.delta, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_zstd_is_left_out_where_it_does_not_help() -> None:
    # Prepare: 4 kB of incompressible noise
    noise = np.frombuffer(np.random.default_rng(1).bytes(4096), np.float32).copy()
    noise[~np.isfinite(noise)] = 0.0
    model = GlobalModel("fleet", 1, [noise], None, 1)
    # Execute
    envelope = msgpack.unpackb(encode_message(model, codec="float32", zstd=True))
    # Assert
    assert "z" not in envelope


def _envelope_with_body(body: bytes, flag: Any = "zstd") -> bytes:
    return bytes(msgpack.packb({"v": 1, "body": body, "z": flag}, use_bin_type=True))


def _body() -> bytes:
    envelope = msgpack.unpackb(encode_message(_update(_sparse_delta()), codec="int8"))
    return bytes(envelope["body"])


@pytest.mark.parametrize(
    ("data", "error", "why"),
    [
        (_envelope_with_body(_body()), MalformedMessageError, "not a zstd frame"),
        (_envelope_with_body(zstandard.compress(_body()), "gzip"), MalformedMessageError,
         "unknown body compression"),
        (_envelope_with_body(zstandard.compress(_body())[:-4]), MalformedMessageError,
         "one complete zstd frame"),
        (_envelope_with_body(zstandard.compress(_body()) * 2), MalformedMessageError,
         "one complete zstd frame"),
        (_envelope_with_body(zstandard.compress(bytes(10_000_000))), MessageTooLargeError,
         "declares more than"),
    ],
)  # fmt: skip
def test_hostile_zstd_bodies_are_refused(data: bytes, error: type, why: str) -> None:
    with pytest.raises(error, match=why):
        decode_message(data)


def test_the_signature_covers_the_compressed_body() -> None:
    # Prepare
    signed = msgpack.unpackb(
        encode_message(_update(_sparse_delta()), codec="int8", signing_key=KEY, zstd=True)
    )
    signed["body"] = zstandard.compress(_body())  # same content, other bytes
    # Execute / Assert
    with pytest.raises(SignatureError):
        decode_message(msgpack.packb(signed), verify_key=lambda _: KEY.public_key())


def test_an_index_coding_without_indices_or_unknown_is_refused() -> None:
    # Prepare
    envelope = msgpack.unpackb(encode_message(_update(_sparse_delta()), codec="int8", compact=True))
    body = msgpack.unpackb(envelope["body"])
    dense, sparse = dict(body["tensors"][1]), dict(body["tensors"][0])
    dense["index_coding"], sparse["index_coding"] = VARINT, "rle"
    for tensor, index in ((dense, 1), (sparse, 0)):
        changed = dict(body, tensors=[*body["tensors"]])
        changed["tensors"][index] = tensor
        data = msgpack.packb({"v": 1, "body": msgpack.packb(changed)})
        # Execute / Assert
        with pytest.raises(MalformedMessageError, match="invalid index coding"):
            decode_message(data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("int8", UpdateEncoding("int8", None, False)),
        ("float16+zstd", UpdateEncoding("float16", None, True)),
        ("topk:0.05", UpdateEncoding("int8", 0.05, False)),
        ("topk:2%+zstd", UpdateEncoding("int8", 0.02, True)),
        ("topk:1", UpdateEncoding("int8", None, False)),
    ],
)
def test_codec_texts_parse(text: str, expected: UpdateEncoding) -> None:
    assert parse_update_encoding(text) == expected


@pytest.mark.parametrize("text", ["int4", "topk", "topk:", "topk:0", "topk:1.5", "topk:nan",
                                  "topk:abc%", "topk:0.05+gzip", "+zstd"])  # fmt: skip
def test_bad_codec_texts_are_refused_with_one_line(text: str) -> None:
    with pytest.raises(CodecError):
        parse_update_encoding(text)


def _announcement(codec: str, encoding: str | None) -> RoundAnnouncement:
    return RoundAnnouncement("fleet", 1, 0, SHA, 10.0, 1, FitConfig(), codec, encoding=encoding)


def test_an_announcement_carries_the_encoding_and_an_old_one_means_the_plain_codec() -> None:
    # Prepare
    sparse = encode_message(_announcement("int8", "topk:0.05+zstd"))
    plain = msgpack.unpackb(encode_message(_announcement("int8", None)))
    # Execute
    decoded = decode_message(sparse, expected_type=RoundAnnouncement)
    fields = msgpack.unpackb(plain["body"])["fields"]
    # Assert
    assert isinstance(decoded, RoundAnnouncement)
    assert announced_encoding(decoded.codec, decoded.encoding) == UpdateEncoding("int8", 0.05, True)
    assert "encoding" not in fields  # what every older device reads
    assert announced_encoding("float16", None) == UpdateEncoding("float16", None, False)


def test_an_announcement_with_a_bad_encoding_is_refused() -> None:
    # Prepare
    envelope = msgpack.unpackb(encode_message(_announcement("int8", None)))
    body = msgpack.unpackb(envelope["body"])
    body["fields"]["encoding"] = "topk:7"
    data = msgpack.packb({"v": 1, "body": msgpack.packb(body)})
    # Execute / Assert
    with pytest.raises(MalformedMessageError, match="density"):
        decode_message(data)
