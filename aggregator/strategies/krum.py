"""Krum and multi-Krum (Blanchard et al., 2017): trust the updates closest to their neighbours.

Each update's score is the sum of squared distances to its n - f - 2 nearest other updates
(at least 1), where f is the number of Byzantine clients to tolerate. Krum keeps the single
best-scored update; multi-Krum averages the m best, weighted by their sample counts.
"""

from __future__ import annotations

import numpy as np

from aggregator.strategies.base import BufferedStrategy
from fleet_protocol.errors import StrategyConfigError


def krum_scores(flat: np.ndarray, num_malicious: int) -> np.ndarray:
    """Score per update (lower is more central); `flat` is (clients, model_size)."""
    squared = np.sum(flat * flat, axis=1)
    distances = squared[:, None] + squared[None, :] - 2.0 * flat @ flat.T  # (clients, clients)
    distances = np.maximum(distances, 0.0)
    np.fill_diagonal(distances, np.inf)
    num_clients = flat.shape[0]
    num_closest = max(1, num_clients - num_malicious - 2)
    num_closest = min(num_closest, max(num_clients - 1, 1))
    nearest = np.sort(distances, axis=1)[:, :num_closest]
    return np.asarray(np.where(np.isinf(nearest), 0.0, nearest).sum(axis=1), dtype=np.float64)


class Krum(BufferedStrategy):
    """Global step = the selected update(s) with the lowest Krum score."""

    def __init__(self, num_malicious: int = 1, num_selected: int | None = 1) -> None:
        super().__init__()
        if num_malicious < 0 or (num_selected is not None and num_selected < 1):
            raise StrategyConfigError("need num_malicious >= 0 and num_selected >= 1")
        self.num_malicious = int(num_malicious)
        self.num_selected = num_selected

    def selected(self) -> list[int]:
        """Indices of the updates this round keeps, best first."""
        scores = krum_scores(self.flattened(), self.num_malicious)
        count = self.num_selected or max(1, len(self.deltas) - self.num_malicious)
        return [int(i) for i in np.argsort(scores, kind="stable")[: min(count, len(scores))]]

    def _aggregate_step(self) -> list[np.ndarray]:
        chosen = self.selected()
        weights = np.array([self.num_examples[i] for i in chosen], dtype=np.float64)
        weights /= weights.sum()
        return [
            sum(w * self.deltas[c][t] for w, c in zip(weights, chosen, strict=True))
            for t in range(len(self.deltas[0]))
        ]


class MultiKrum(Krum):
    """Multi-Krum: average the m best-scored updates (default m = n - f)."""

    def __init__(self, num_malicious: int = 1, num_selected: int | None = None) -> None:
        super().__init__(num_malicious, num_selected)
