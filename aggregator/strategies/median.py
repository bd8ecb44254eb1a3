"""Coordinate-wise median (Yin et al., 2018): each coordinate ignores up to half of the clients."""

from __future__ import annotations

import numpy as np

from aggregator.strategies.base import BufferedStrategy


class FedMedian(BufferedStrategy):
    """Global step = per-coordinate median of the deltas (unweighted by sample counts)."""

    def _aggregate_step(self) -> list[np.ndarray]:
        return [np.median(self.stacked(i), axis=0) for i in range(len(self.deltas[0]))]
