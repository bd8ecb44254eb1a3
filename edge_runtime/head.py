"""The numpy classification head that sits after the int8 backbone.

A head is dense layers `h = act_i(h @ kernel_i + bias_i)` with weights in the order
`[kernel_0, bias_0, kernel_1, bias_1, ...]` (docs/architecture.md); that order is also the
order of federated deltas. Pure maths plus `from_npz`/`to_npz` at the edge.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from edge_runtime.errors import HeadError

Weights = list[NDArray[np.float32]]
FloatT = TypeVar("FloatT", bound=np.floating[Any])
ACTIVATIONS = ("relu", "softmax", "linear")


def relu(x: NDArray[FloatT]) -> NDArray[FloatT]:
    result: NDArray[FloatT] = np.maximum(x, x.dtype.type(0))
    return result


def softmax(logits: NDArray[FloatT]) -> NDArray[FloatT]:
    """Row-wise softmax, shifted by the row max so large logits do not overflow."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp: NDArray[FloatT] = np.exp(shifted)
    result: NDArray[FloatT] = exp / exp.sum(axis=-1, keepdims=True)
    return result


def apply_activation(name: str, x: NDArray[FloatT]) -> NDArray[FloatT]:
    if name == "relu":
        return relu(x)
    if name == "softmax":
        return softmax(x)
    if name == "linear":
        return x
    raise HeadError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")


def validate_head(weights: Sequence[NDArray[np.floating]], activations: Sequence[str]) -> None:
    """Raise `HeadError` unless the weights chain as dense layers matching the activations."""
    if len(weights) == 0 or len(weights) % 2:
        raise HeadError(f"head needs kernel/bias pairs, got {len(weights)} arrays")
    if len(weights) // 2 != len(activations):
        raise HeadError(f"{len(weights) // 2} dense layers but {len(activations)} activations")
    for name in activations:
        if name not in ACTIVATIONS:
            raise HeadError(f"unknown activation {name!r}")
    previous_units = None
    for layer in range(len(weights) // 2):
        kernel, bias = weights[2 * layer], weights[2 * layer + 1]
        if kernel.ndim != 2 or bias.shape != (kernel.shape[1],):
            raise HeadError(f"layer {layer}: kernel {kernel.shape} and bias {bias.shape} mismatch")
        if previous_units is not None and kernel.shape[0] != previous_units:
            raise HeadError(
                f"layer {layer}: expects {kernel.shape[0]} inputs, gets {previous_units}"
            )
        previous_units = kernel.shape[1]


@dataclass(frozen=True)
class Head:
    """Dense layers in numpy; `weights` is the federated `Weights` list."""

    weights: Weights
    activations: tuple[str, ...]

    def __post_init__(self) -> None:
        validate_head(self.weights, self.activations)

    @classmethod
    def from_weights(
        cls, weights: Sequence[NDArray[np.floating]], activations: Sequence[str]
    ) -> Head:
        """Copy the arrays as float32 so the caller's arrays stay untouched."""
        return cls([np.array(w, dtype=np.float32) for w in weights], tuple(activations))

    @property
    def input_size(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.weights[-1].shape[0])

    def forward(self, embeddings: NDArray[np.floating]) -> NDArray[np.float32]:
        """Outputs of the last layer (probabilities when it is softmax), shape [N, K]."""
        h = np.asarray(embeddings, dtype=np.float32)  # (batch, features)
        if h.ndim == 1:
            h = h[None, :]
        if h.shape[-1] != self.input_size:
            raise HeadError(f"head expects {self.input_size} features, got {h.shape[-1]}")
        for layer, name in enumerate(self.activations):
            h = apply_activation(name, h @ self.weights[2 * layer] + self.weights[2 * layer + 1])
        return h.astype(np.float32, copy=False)

    def predict_proba(self, embeddings: NDArray[np.floating]) -> NDArray[np.float32]:
        """Class probabilities [N, K]; applies softmax if the last layer is not one."""
        out = self.forward(embeddings)
        return out if self.activations[-1] == "softmax" else softmax(out)

    def predict(self, embeddings: NDArray[np.floating]) -> NDArray[np.int64]:
        """Most likely class per row, [N]."""
        labels: NDArray[np.int64] = np.argmax(self.forward(embeddings), axis=-1).astype(np.int64)
        return labels

    def to_npz_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **_npz_arrays(self))  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_npz_bytes(cls, data: bytes) -> Head:
        return _head_from_npz(io.BytesIO(data), "<bytes>")

    def to_npz(self, path: str | Path) -> None:
        """Write `kernel_i`, `bias_i`, `activations` (docs/architecture.md)."""
        Path(path).write_bytes(self.to_npz_bytes())

    @classmethod
    def from_npz(cls, path: str | Path) -> Head:
        try:
            with open(path, "rb") as handle:
                return _head_from_npz(io.BytesIO(handle.read()), str(path))
        except OSError as exc:
            raise HeadError(f"cannot read head {path}: {exc.strerror}") from exc


def _npz_arrays(head: Head) -> dict[str, NDArray[np.generic]]:
    arrays: dict[str, NDArray[np.generic]] = {}
    for layer in range(len(head.activations)):
        arrays[f"kernel_{layer}"] = head.weights[2 * layer]
        arrays[f"bias_{layer}"] = head.weights[2 * layer + 1]
    arrays["activations"] = np.array(head.activations, dtype=np.str_)
    return arrays


def _head_from_npz(source: io.BytesIO, name: str) -> Head:
    try:
        with np.load(source, allow_pickle=False) as npz:
            activations = [str(a) for a in npz["activations"]]
            weights = []
            for layer in range(len(activations)):
                weights += [npz[f"kernel_{layer}"], npz[f"bias_{layer}"]]
    except (KeyError, ValueError, OSError) as exc:
        raise HeadError(f"malformed head file {name}: {exc}") from exc
    return Head.from_weights(weights, activations)
