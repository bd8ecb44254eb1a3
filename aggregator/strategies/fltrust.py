"""FLTrust (Cao et al., NDSS 2021): trust each update by its direction against a server update.

The caller computes the server's own delta on a small clean root set from the same global
model (`set_server_update`, or a `server_update_fn(global_weights)` called in `begin_round`).
Each client delta g_i gets trust TS_i = ReLU(cos(g_i, g_0)), is rescaled to the norm of g_0,
and the step is sum(TS_i * g_i * |g_0|/|g_i|) / sum(TS_i). Streamed: O(model) memory.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aggregator.aggregation import check_same_shapes
from aggregator.strategies.base import HOLDS_STREAMING, Strategy, as_float64
from fleet_protocol.errors import AggregationError
from fleet_protocol.types import ArrayState, Weights


def _flatten(tensors: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([t.reshape(-1) for t in tensors])


class FLTrust(Strategy):
    """Cosine-trust-weighted, norm-clipped mean of client deltas against a root-set delta."""

    holds = HOLDS_STREAMING

    def __init__(self, server_update_fn: Callable[[Weights], Weights] | None = None) -> None:
        super().__init__()
        self.server_update_fn = server_update_fn
        self.server_update: list[np.ndarray] | None = None
        self.trust_sum = 0.0
        self.weighted_sum: list[np.ndarray] | None = None
        self.trust_scores: list[float] = []

    def begin_round(self, global_weights: Weights) -> None:
        """Start a round; compute the server update now if a function was given."""
        super().begin_round(global_weights)
        self.server_update = None
        if self.server_update_fn is not None:
            self.set_server_update(self.server_update_fn(global_weights))

    def set_server_update(self, delta: Weights) -> None:
        """The root-set delta of this round; must come before the first `accumulate`."""
        check_same_shapes(delta, self.shapes or [])
        self.server_update = as_float64(delta)

    def _reset_round(self) -> None:
        self.trust_sum, self.weighted_sum, self.trust_scores = 0.0, None, []

    def _add(self, delta: Weights, flat: np.ndarray, num_examples: int, device_id: str) -> None:
        if self.server_update is None:
            raise AggregationError("FLTrust needs set_server_update() before accumulate()")
        root, client = _flatten(self.server_update), flat.astype(np.float64)
        root_norm, client_norm = float(np.linalg.norm(root)), float(np.linalg.norm(client))
        cosine = float(root @ client) / (root_norm * client_norm) if root_norm * client_norm else 0
        trust = max(cosine, 0.0)
        scale = trust * root_norm / client_norm if client_norm else 0.0
        if self.weighted_sum is None:
            self.weighted_sum = [np.zeros(np.shape(t), dtype=np.float64) for t in delta]
        for total, tensor in zip(self.weighted_sum, delta, strict=True):
            total += np.asarray(tensor) * np.float64(scale)
        self.trust_sum += trust
        self.trust_scores.append(trust)

    def _aggregate_step(self) -> list[np.ndarray]:
        if self.trust_sum == 0.0 or self.weighted_sum is None:
            return [np.zeros(shape) for shape in self.shapes or []]
        return [total / self.trust_sum for total in self.weighted_sum]

    def _state_to_arrays(self) -> ArrayState:
        state: ArrayState = {
            "fltrust/trust_sum": np.array(self.trust_sum),
            "fltrust/trust_scores": np.array(self.trust_scores, dtype=np.float64),
        }
        for i, tensor in enumerate(self.server_update or []):
            state[f"fltrust/server_{i}"] = tensor.copy()
        for i, tensor in enumerate(self.weighted_sum or []):
            state[f"fltrust/sum_{i}"] = tensor.copy()
        return state

    def _state_from_arrays(self, state: ArrayState) -> None:
        self.trust_sum = float(state.get("fltrust/trust_sum", 0.0))
        self.trust_scores = [float(t) for t in state.get("fltrust/trust_scores", [])]
        self.server_update = _tensors(state, "fltrust/server_")
        self.weighted_sum = _tensors(state, "fltrust/sum_")


def _tensors(state: ArrayState, prefix: str) -> list[np.ndarray] | None:
    count = sum(1 for key in state if key.startswith(prefix))
    return [np.array(state[f"{prefix}{i}"], np.float64) for i in range(count)] or None
