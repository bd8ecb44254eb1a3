"""FedAvg (McMahan et al., 2017): new global = global + lr * weighted mean of the deltas."""

from __future__ import annotations

import numpy as np

from aggregator.strategies.base import StreamingStrategy
from fleet_protocol.errors import StrategyConfigError


class FedAvg(StreamingStrategy):
    """Sample-weighted mean of client deltas, streamed: memory independent of client count."""

    def __init__(self, server_learning_rate: float = 1.0) -> None:
        super().__init__()
        if not server_learning_rate > 0:
            raise StrategyConfigError("server_learning_rate must be > 0")
        self.server_learning_rate = float(server_learning_rate)

    def _aggregate_step(self) -> list[np.ndarray]:
        return [self.server_learning_rate * d for d in self.mean_delta()]
