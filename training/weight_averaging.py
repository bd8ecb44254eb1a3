"""Running mean of model weights over epochs (tail averaging, as in SWA)."""

from __future__ import annotations

import numpy as np


class WeightAverage:
    """Accumulates a list of weight arrays and returns their element-wise mean."""

    def __init__(self) -> None:
        self._sums: list[np.ndarray] | None = None
        self.count = 0

    def add(self, weights: list[np.ndarray]) -> None:
        """Fold one snapshot of the weights into the mean."""
        if self._sums is None:
            self._sums = [np.asarray(w, dtype=np.float64).copy() for w in weights]
        else:
            for total, value in zip(self._sums, weights, strict=True):
                total += value
        self.count += 1

    def mean(self) -> list[np.ndarray]:
        """The mean snapshot, in the dtypes Keras expects (float32)."""
        if self._sums is None:
            raise ValueError("no weights were added")
        return [(total / self.count).astype(np.float32) for total in self._sums]
