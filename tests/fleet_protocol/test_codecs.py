"""Tensor codecs: round trips, error bounds, unbiased stochastic rounding, top-k feedback."""

from __future__ import annotations

import numpy as np
import pytest

from fleet_protocol.errors import CodecError, MalformedMessageError, NonFiniteValueError
from fleet_protocol.tensor_codecs import (
    EncodedTensor,
    TopKSparsifier,
    decode_tensor,
    encode_tensor,
    quantize_int8,
    stochastic_round,
)


def test_float32_round_trip_is_exact() -> None:
    # Prepare
    tensor = np.array([[0.5, -1.25], [3.0, 1e-7]], dtype=np.float32)
    # Execute
    decoded = decode_tensor(encode_tensor(tensor, "float32"))
    # Assert
    np.testing.assert_array_equal(decoded, tensor)
    assert decoded.dtype == np.float32


def test_float16_round_trip_within_half_precision() -> None:
    # Prepare
    tensor = np.array([0.1, -2.5, 1000.0, 3e-3], dtype=np.float32)
    # Execute
    decoded = decode_tensor(encode_tensor(tensor, "float16"))
    # Assert
    np.testing.assert_allclose(decoded, tensor, rtol=1e-3)


def test_int8_error_at_most_one_step_with_stochastic_rounding() -> None:
    # Prepare
    rng = np.random.default_rng(0)
    tensor = rng.normal(size=(16, 8)).astype(np.float32)
    step = np.abs(tensor).max() / 127
    # Execute
    decoded = decode_tensor(encode_tensor(tensor, "int8", rng))
    # Assert
    assert np.abs(decoded - tensor).max() <= step * (1 + 1e-6)


def test_int8_nearest_rounding_error_at_most_half_step() -> None:
    # Prepare
    tensor = np.array([1.0, -0.3, 0.77, 0.0051], dtype=np.float32)
    # Execute
    decoded = decode_tensor(encode_tensor(tensor, "int8"))
    # Assert
    assert np.abs(decoded - tensor).max() <= 0.5 / 127 + 1e-7


def test_int8_of_zero_tensor_has_zero_scale() -> None:
    # Execute
    quantised, scale = quantize_int8(np.zeros(4, dtype=np.float32))
    # Assert
    assert scale == 0.0
    assert not quantised.any()


def test_stochastic_rounding_is_unbiased() -> None:
    # Prepare
    rng = np.random.default_rng(42)
    values = np.full(20_000, 0.3)
    # Execute
    rounded = stochastic_round(values, rng)
    # Assert
    assert set(np.unique(rounded)) == {0.0, 1.0}
    assert abs(rounded.mean() - 0.3) < 0.02


def test_int8_stochastic_mean_of_many_encodings_converges() -> None:
    # Prepare
    rng = np.random.default_rng(7)
    tensor = np.array([1.0, 0.004, -0.0123, 0.5], dtype=np.float32)
    # Execute
    mean = np.mean([decode_tensor(encode_tensor(tensor, "int8", rng)) for _ in range(4000)], 0)
    # Assert
    np.testing.assert_allclose(mean, tensor, atol=2e-4)


def test_sparse_layout_chosen_for_mostly_zero_tensor() -> None:
    # Prepare
    tensor = np.zeros((64, 8), dtype=np.float32)
    tensor[3, 2], tensor[40, 7] = 0.25, -1.5
    # Execute
    encoded = encode_tensor(tensor, "float32")
    # Assert
    assert encoded.indices is not None and len(encoded.indices) == 4  # two uint16
    np.testing.assert_array_equal(decode_tensor(encoded), tensor)


def test_encode_refuses_nan_and_float16_overflow() -> None:
    with pytest.raises(CodecError):
        encode_tensor(np.array([np.nan], dtype=np.float32), "float32")
    with pytest.raises(CodecError):
        encode_tensor(np.array([1e6], dtype=np.float32), "float16")
    with pytest.raises(CodecError):
        encode_tensor(np.zeros(2, dtype=np.float32), "bfloat16")


def test_decode_rejects_size_mismatch_before_allocating() -> None:
    # Prepare: a shape of a billion elements with 8 bytes of data
    encoded = EncodedTensor("float32", (1_000_000_000,), 1.0, b"\x00" * 8)
    # Execute / Assert
    with pytest.raises(MalformedMessageError):
        decode_tensor(encoded)


def test_decode_rejects_infinite_values_and_bad_scale() -> None:
    inf_bytes = np.array([np.inf], dtype="<f4").tobytes()
    with pytest.raises(NonFiniteValueError):
        decode_tensor(EncodedTensor("float32", (1,), 1.0, inf_bytes))
    with pytest.raises(NonFiniteValueError):
        decode_tensor(EncodedTensor("int8", (1,), float("nan"), b"\x01"))


def test_decode_rejects_unsorted_sparse_indices() -> None:
    indices = np.array([3, 1], dtype="<u2").tobytes()
    encoded = EncodedTensor("int8", (5,), 1.0, b"\x01\x02", indices)
    with pytest.raises(MalformedMessageError):
        decode_tensor(encoded)


def test_topk_keeps_largest_and_feeds_back_the_rest() -> None:
    # Prepare
    sparsifier = TopKSparsifier(fraction=0.25)
    delta = [np.array([0.1, -4.0, 0.2, 0.3], dtype=np.float32)]
    # Execute
    first = sparsifier.sparsify(delta)
    second = sparsifier.sparsify([np.zeros(4, dtype=np.float32)])
    # Assert
    np.testing.assert_array_equal(first[0], [0, -4.0, 0, 0])
    np.testing.assert_allclose(second[0], [0, 0, 0, 0.3])
    assert sparsifier.residual is not None
    np.testing.assert_allclose(sparsifier.residual[0], [0.1, 0, 0.2, 0])


def test_topk_error_feedback_loses_nothing_over_rounds() -> None:
    # Prepare
    rng = np.random.default_rng(3)
    sparsifier = TopKSparsifier(fraction=0.1)
    deltas = [[rng.normal(size=(10, 5)).astype(np.float32)] for _ in range(6)]
    # Execute
    sent = sum(sparsifier.sparsify(d)[0] for d in deltas)
    # Assert: everything produced was either sent or is still in the residual
    assert sparsifier.residual is not None
    np.testing.assert_allclose(sent + sparsifier.residual[0], sum(d[0] for d in deltas), atol=1e-5)


def test_topk_residual_persists_through_arrays() -> None:
    # Prepare
    sparsifier = TopKSparsifier(fraction=0.5)
    sparsifier.sparsify([np.array([1.0, 2.0], dtype=np.float32)])
    restored = TopKSparsifier(fraction=0.5)
    # Execute
    restored.from_arrays(sparsifier.to_arrays())
    # Assert
    assert restored.residual is not None
    np.testing.assert_array_equal(restored.residual[0], [1.0, 0.0])
