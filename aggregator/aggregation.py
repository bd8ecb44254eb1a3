"""Pure weighted averaging of models or deltas, batch and streaming.

`aggregate_weighted` is the textbook FedAvg mean (Flower's `aggregate`). The streaming
`WeightedMeanAccumulator` gives the same result while holding one float64 running sum per
tensor, so memory does not grow with the number of clients, and its state is plain arrays a
service can persist before acknowledging an update.
"""

from __future__ import annotations

import math

import numpy as np

from fleet_protocol.errors import (
    AggregationError,
    NonFiniteValueError,
    NoUpdatesError,
    ShapeMismatchError,
)
from fleet_protocol.types import ArrayState, Weights


def check_num_examples(num_examples: int) -> int:
    """Return `num_examples` if it is a positive integer (a weight must be)."""
    if isinstance(num_examples, bool) or not isinstance(num_examples, (int, np.integer)):
        raise AggregationError(f"num_examples must be an integer, got {num_examples!r}")
    if num_examples <= 0:
        raise AggregationError(f"num_examples must be positive, got {num_examples}")
    return int(num_examples)


def check_same_shapes(weights: Weights, reference: list[tuple[int, ...]]) -> None:
    """Raise `ShapeMismatchError` unless `weights` has exactly the reference shapes."""
    try:
        if [t.shape for t in weights] == reference:  # the common case, without np.shape calls
            return
    except AttributeError:
        pass
    shapes = [tuple(np.shape(t)) for t in weights]
    if shapes != reference:
        raise ShapeMismatchError(f"update shapes {shapes} differ from {reference}")


def all_finite(weights: Weights) -> bool:
    """True if no tensor holds NaN or infinity (one float64 sum per tensor, no temporaries)."""
    return all(math.isfinite(np.asarray(t).sum(dtype=np.float64)) for t in weights)


def flatten_weights(weights: Weights) -> np.ndarray:
    """Every tensor of an update in one flat vector (one copy, the tensors' own dtype)."""
    return np.concatenate(weights, axis=None)  # axis=None flattens every input in one call


def flat_is_finite(flat: np.ndarray) -> bool:
    """True if a flat update holds no NaN or infinity.

    Fast path: the dot product with itself (one BLAS call, no cast) is finite whenever every
    element is. Only if it is not (a NaN or infinity, or squares beyond the float32 range) does
    the exact test run: a float64 sum, which float32 values cannot overflow.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(np.dot(flat, flat)):
            return True
    with np.errstate(over="ignore", invalid="ignore"):
        return math.isfinite(flat.sum(dtype=np.float64))


def unflatten(flat: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Split a flat vector back into tensors of the given shapes (views, no copy)."""
    sizes = [int(np.prod(shape)) for shape in shapes]
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return [part.reshape(shape) for part, shape in zip(parts, shapes, strict=True)]


def aggregate_weighted(results: list[tuple[Weights, int]]) -> Weights:
    """Mean of the weights weighted by their example counts: sum(n_i w_i) / sum(n_i)."""
    accumulator = WeightedMeanAccumulator()
    for weights, num_examples in results:
        accumulator.add(weights, num_examples)
    return accumulator.result()


class WeightedMeanAccumulator:
    """Running weighted mean in float64: O(model) memory whatever the number of clients.

    The sum is one flat float64 vector: one fused multiply-add per update whatever the number
    of tensors, which is what makes streaming as fast as a batch mean over stacked arrays.
    """

    def __init__(self) -> None:
        self._sum: np.ndarray | None = None
        self._scratch: np.ndarray | None = None
        self._shapes: list[tuple[int, ...]] | None = None
        self.total_examples = 0
        self.count = 0

    @property
    def shapes(self) -> list[tuple[int, ...]] | None:
        """Shapes of the tensors being averaged, None before the first `add`."""
        return self._shapes

    def add(self, weights: Weights, num_examples: int) -> None:
        """Fold one client's weights in, weighted by its example count."""
        n = check_num_examples(num_examples)
        if self._shapes is not None:
            check_same_shapes(weights, self._shapes)
        flat = flatten_weights(weights)
        if not flat_is_finite(flat):
            raise NonFiniteValueError("update holds NaN or infinity")
        self.add_flat(flat, n, [tuple(np.shape(t)) for t in weights])

    def add_validated(self, weights: Weights, num_examples: int) -> None:
        """`add` without the checks, for a caller that already made them (a `Strategy`)."""
        self.add_flat(flatten_weights(weights), num_examples, [tuple(np.shape(t)) for t in weights])

    def add_flat(self, flat: np.ndarray, num_examples: int, shapes: list[tuple[int, ...]]) -> None:
        """Fold in an already checked and flattened update with its tensor shapes."""
        if self._sum is None:
            self._sum = np.zeros(flat.size, dtype=np.float64)
            self._scratch = np.empty(flat.size, dtype=np.float64)
            self._shapes = list(shapes)
        # np.float64, not a Python int: NumPy 2 would multiply a float32 vector by an int in
        # float32 and only then widen it (NEP 50); a float64 scalar makes the product float64.
        np.multiply(flat, np.float64(num_examples), out=self._scratch)
        self._sum += self._scratch
        self.total_examples += num_examples
        self.count += 1

    def add_sum(self, weighted_sum: np.ndarray, total_examples: int, count: int,
                shapes: list[tuple[int, ...]]) -> None:  # fmt: skip
        """Fold in a sum of `num_examples * update` over `count` updates made elsewhere."""
        if self._sum is None:
            self._sum = np.zeros(weighted_sum.size, dtype=np.float64)
            self._scratch = np.empty(weighted_sum.size, dtype=np.float64)
            self._shapes = list(shapes)
        self._sum += weighted_sum
        self.total_examples += total_examples
        self.count += count

    def result(self) -> Weights:
        """The weighted mean as float32 tensors; `NoUpdatesError` if nothing was added."""
        return [tensor.astype(np.float32) for tensor in self.exact_result()]

    def exact_result(self) -> list[np.ndarray]:
        """The weighted mean in float64, for a caller that still adds to it (a server step)."""
        if self._sum is None or self._shapes is None or self.total_examples == 0:
            raise NoUpdatesError("no updates to aggregate")
        return unflatten(self._sum / self.total_examples, self._shapes)

    def to_arrays(self) -> ArrayState:
        """State as named arrays, one float64 sum per tensor (so a restore is exact)."""
        state: ArrayState = {
            "total_examples": np.array(self.total_examples, dtype=np.int64),
            "count": np.array(self.count, dtype=np.int64),
        }
        if self._sum is not None and self._shapes is not None:
            for i, total in enumerate(unflatten(self._sum, self._shapes)):
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
        if sums:
            accumulator._shapes = [s.shape for s in sums]
            accumulator._sum = np.concatenate(sums, axis=None)
            accumulator._scratch = np.empty_like(accumulator._sum)
        return accumulator
