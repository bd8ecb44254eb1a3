"""The numpy head: forward pass, prediction, npz round trip, validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_runtime.errors import HeadError
from edge_runtime.head import Head


def _tiny_head() -> Head:
    kernel_0 = np.array([[1.0, -1.0], [0.5, 2.0]], dtype=np.float32)
    bias_0 = np.array([0.0, -1.0], dtype=np.float32)
    kernel_1 = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]], dtype=np.float32)
    bias_1 = np.zeros(3, dtype=np.float32)
    return Head.from_weights([kernel_0, bias_0, kernel_1, bias_1], ["relu", "softmax"])


def test_forward_applies_relu_then_softmax() -> None:
    # Prepare
    head = _tiny_head()
    x = np.array([[1.0, 1.0]], dtype=np.float32)
    # hidden = relu([1.5, 1.0] + [0, -1]) = [1.5, 0.0]; logits = [1.5, 0.0, -1.5]
    logits = np.array([1.5, 0.0, -1.5])
    expected = np.exp(logits) / np.exp(logits).sum()
    # Execute
    probabilities = head.forward(x)
    # Assert
    np.testing.assert_allclose(probabilities[0], expected, rtol=1e-6)
    assert head.predict(x).tolist() == [0]
    np.testing.assert_allclose(head.predict_proba(x), probabilities)


def test_single_vector_is_treated_as_a_batch_of_one() -> None:
    assert _tiny_head().forward(np.array([0.0, 0.0])).shape == (1, 3)


def test_npz_round_trip_keeps_weights_and_activations(tmp_path: Path) -> None:
    # Prepare
    head = _tiny_head()
    path = tmp_path / "head.npz"
    # Execute
    head.to_npz(path)
    loaded = Head.from_npz(path)
    # Assert
    assert loaded.activations == ("relu", "softmax")
    for a, b in zip(loaded.weights, head.weights, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.float32
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["activations", "bias_0", "bias_1", "kernel_0", "kernel_1"]


def test_mismatched_shapes_and_unknown_activations_are_rejected() -> None:
    w = _tiny_head().weights
    with pytest.raises(HeadError, match="activations"):
        Head.from_weights(w, ["relu"])
    with pytest.raises(HeadError, match="unknown activation"):
        Head.from_weights(w, ["relu", "tanh"])
    with pytest.raises(HeadError, match="inputs"):
        Head.from_weights([w[0], w[1], np.zeros((3, 3)), w[3]], ["relu", "softmax"])
    with pytest.raises(HeadError, match="features"):
        _tiny_head().forward(np.zeros((1, 5)))


def test_malformed_npz_is_head_error(tmp_path: Path) -> None:
    path = tmp_path / "head.npz"
    np.savez(path, kernel_0=np.zeros((2, 2)))
    with pytest.raises(HeadError, match="malformed"):
        Head.from_npz(path)
    with pytest.raises(HeadError, match="cannot read"):
        Head.from_npz(tmp_path / "absent.npz")
