"""Adaptive server optimisers FedAdam and FedYogi (Reddi et al., 2021, "Adaptive Federated
Optimization", Algorithm 2).

The round's weighted mean delta is a pseudo-gradient; the server keeps first and second
moments across rounds (persisted by `state_to_arrays`):
    m = b1 m + (1 - b1) d
    v = b2 v + (1 - b2) d^2                      (Adam)
    v = v - (1 - b2) d^2 sign(v - d^2)           (Yogi)
    x = x + eta m / (sqrt(v) + tau)
"""

from __future__ import annotations

import numpy as np

from aggregator.strategies.base import StreamingStrategy
from fleet_protocol.errors import StrategyConfigError
from fleet_protocol.types import ArrayState


class FedOpt(StreamingStrategy):
    """Common moment bookkeeping of the adaptive server optimisers."""

    def __init__(
        self, eta: float = 0.01, beta_1: float = 0.9, beta_2: float = 0.99, tau: float = 1e-3
    ) -> None:
        super().__init__()
        if not (eta > 0 and 0 <= beta_1 < 1 and 0 <= beta_2 < 1 and tau > 0):
            raise StrategyConfigError("need eta > 0, 0 <= beta_1, beta_2 < 1 and tau > 0")
        self.eta, self.beta_1, self.beta_2, self.tau = eta, beta_1, beta_2, tau
        self.m: list[np.ndarray] | None = None
        self.v: list[np.ndarray] | None = None

    def _aggregate_step(self) -> list[np.ndarray]:
        delta = self.mean_delta()
        if self.m is None or self.v is None:
            self.m = [np.zeros_like(d) for d in delta]
            self.v = [np.zeros_like(d) for d in delta]
        b1 = self.beta_1
        self.m = [b1 * m + (1 - b1) * d for m, d in zip(self.m, delta, strict=True)]
        self.v = [self._second_moment(v, d) for v, d in zip(self.v, delta, strict=True)]
        return [self.eta * m / (np.sqrt(v) + self.tau) for m, v in zip(self.m, self.v, strict=True)]

    def _second_moment(self, v: np.ndarray, d: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _state_to_arrays(self) -> ArrayState:
        state = super()._state_to_arrays()
        for i, (m, v) in enumerate(zip(self.m or [], self.v or [], strict=True)):
            state[f"opt/m_{i}"], state[f"opt/v_{i}"] = m.copy(), v.copy()
        return state

    def _state_from_arrays(self, state: ArrayState) -> None:
        super()._state_from_arrays(state)
        count = sum(1 for key in state if key.startswith("opt/m_"))
        self.m = [np.array(state[f"opt/m_{i}"], np.float64) for i in range(count)] or None
        self.v = [np.array(state[f"opt/v_{i}"], np.float64) for i in range(count)] or None


class FedAdam(FedOpt):
    """Adam on the server: v tracks an exponential mean of squared pseudo-gradients."""

    def _second_moment(self, v: np.ndarray, d: np.ndarray) -> np.ndarray:
        return np.asarray(self.beta_2 * v + (1 - self.beta_2) * d * d)


class FedYogi(FedOpt):
    """Yogi on the server: v moves additively, so it grows slower than Adam's on spikes."""

    def _second_moment(self, v: np.ndarray, d: np.ndarray) -> np.ndarray:
        squared = d * d
        return np.asarray(v - (1 - self.beta_2) * squared * np.sign(v - squared))
