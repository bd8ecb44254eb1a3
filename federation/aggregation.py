"""Pure weighted averaging of models or deltas, batch and streaming.

`aggregate_weighted` is the textbook FedAvg mean (Flower's `aggregate`). The streaming
`WeightedMeanAccumulator` gives the same result while holding one float64 running sum per
tensor, so memory does not grow with the number of clients, and its state is plain arrays a
service can persist before acknowledging an update.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from federation.errors import (
    AggregationError,
    NonFiniteValueError,
    NoUpdatesError,
    ShapeMismatchError,
)
from federation.types import ArrayState, Weights


def check_num_examples(num_examples: int) -> int:
    """Return `num_examples` if it is a positive integer (a weight must be)."""
    if isinstance(num_examples, bool) or not isinstance(num_examples, (int, np.integer)):
        raise AggregationError(f"num_examples must be an integer, got {num_examples!r}")
    if num_examples <= 0:
        raise AggregationError(f"num_examples must be positive, got {num_examples}")
    return int(num_examples)


def check_same_shapes(weights: Weights, reference: list[tuple[int, ...]]) -> None:
    """Raise `ShapeMismatchError` unless `weights` has exactly the reference shapes."""
    shapes = [tuple(np.shape(t)) for t in weights]
    if shapes != reference:
        raise ShapeMismatchError(f"update shapes {shapes} differ from {reference}")


def all_finite(weights: Weights) -> bool:
    """True if no tensor holds NaN or infinity (one float64 sum per tensor, no temporaries)."""
    return all(math.isfinite(np.asarray(t).sum(dtype=np.float64)) for t in weights)


def aggregate_weighted(results: list[tuple[Weights, int]]) -> Weights:
    """Mean of the weights weighted by their example counts: sum(n_i w_i) / sum(n_i)."""
    accumulator = WeightedMeanAccumulator()
    for weights, num_examples in results:
        accumulator.add(weights, num_examples)
    return accumulator.result()


class WeightedMeanAccumulator:
    """Running weighted mean in float64: O(model) memory whatever the number of clients."""

    def __init__(self) -> None:
        self._sums: list[np.ndarray] | None = None
        self.total_examples = 0
        self.count = 0

    @property
    def shapes(self) -> list[tuple[int, ...]] | None:
        """Shapes of the tensors being averaged, None before the first `add`."""
        return None if self._sums is None else [s.shape for s in self._sums]

    def add(self, weights: Weights, num_examples: int) -> None:
        """Fold one client's weights in, weighted by its example count."""
        n = check_num_examples(num_examples)
        if not all_finite(weights):
            raise NonFiniteValueError("update holds NaN or infinity")
        if self._sums is not None:
            check_same_shapes(weights, [s.shape for s in self._sums])
        self.add_validated(weights, n)

    def add_validated(self, weights: Weights, num_examples: int) -> None:
        """`add` without the checks, for a caller that already made them (a `Strategy`)."""
        if self._sums is None:
            self._sums = [np.zeros(np.shape(t), dtype=np.float64) for t in weights]
        weight = np.float64(num_examples)
        for total, tensor in zip(self._sums, weights, strict=True):
            total += np.asarray(tensor) * weight  # float64 product, one temporary
        self.total_examples += num_examples
        self.count += 1

    def result(self) -> Weights:
        """The weighted mean as float32 tensors; `NoUpdatesError` if nothing was added."""
        if self._sums is None or self.total_examples == 0:
            raise NoUpdatesError("no updates to aggregate")
        return [(s / self.total_examples).astype(np.float32) for s in self._sums]

    def to_arrays(self) -> ArrayState:
        """State as named arrays (sums in float64, so a restore is exact)."""
        state: ArrayState = {
            "total_examples": np.array(self.total_examples, dtype=np.int64),
            "count": np.array(self.count, dtype=np.int64),
        }
        for i, total in enumerate(self._sums or []):
            state[f"sum_{i}"] = total.copy()
        return state

    @classmethod
    def from_arrays(cls, state: ArrayState) -> WeightedMeanAccumulator:
        """Rebuild an accumulator written by `to_arrays`."""
        accumulator = cls()
        if not state:
            return accumulator
        accumulator.total_examples = int(state["total_examples"])
        accumulator.count = int(state["count"])
        num_sums = sum(1 for key in state if key.startswith("sum_"))
        sums = [np.array(state[f"sum_{i}"], dtype=np.float64) for i in range(num_sums)]
        accumulator._sums = sums or None
        return accumulator


def arrays_to_bytes(state: ArrayState) -> bytes:
    """Serialise named arrays as an uncompressed `.npz` (no pickle), e.g. for a SQLite blob."""
    buffer = io.BytesIO()
    save: Any = np.savez  # numpy's stub types **kwds as its allow_pickle flag
    save(buffer, allow_pickle=False, **state)
    return buffer.getvalue()


def arrays_from_bytes(data: bytes) -> ArrayState:
    """Inverse of `arrays_to_bytes`; object arrays are refused (allow_pickle=False)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
