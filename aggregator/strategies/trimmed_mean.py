"""Coordinate-wise trimmed mean (Yin et al., 2018): drop the extremes, average the rest."""

from __future__ import annotations

import numpy as np

from aggregator.strategies.base import BufferedStrategy
from fleet_protocol.errors import StrategyConfigError


def trimmed_mean(values: np.ndarray, beta: float) -> np.ndarray:
    """Mean over axis 0 after dropping floor(beta * n) lowest and highest per coordinate."""
    cut = int(beta * values.shape[0])
    ordered = np.sort(values, axis=0)
    return np.asarray(ordered[cut : values.shape[0] - cut].mean(axis=0), dtype=np.float64)


class TrimmedMean(BufferedStrategy):
    """Global step = per-coordinate mean of the deltas with a `beta` fraction cut at each end."""

    def __init__(self, beta: float = 0.2) -> None:
        super().__init__()
        if not 0.0 <= beta < 0.5:
            raise StrategyConfigError(f"trimmed-mean beta must be in [0, 0.5), got {beta!r}")
        self.beta = float(beta)

    def _aggregate_step(self) -> list[np.ndarray]:
        return [trimmed_mean(self.stacked(i), self.beta) for i in range(len(self.deltas[0]))]
