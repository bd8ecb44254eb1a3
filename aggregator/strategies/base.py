"""What every aggregation strategy does in a round, and two ways of holding updates.

A round is `begin_round(global)`, one `accumulate(delta, n, device_id)` per accepted update,
then `finish_round(global) -> new global`. Deltas are `new - old` per tensor. Strategies are
pure: no I/O, no clocks, no threads. `state_to_arrays()` after each `accumulate` is all a
service needs to persist to survive a crash (`state_from_arrays` restores it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from aggregator.aggregation import (
    WeightedMeanAccumulator,
    check_num_examples,
    check_same_shapes,
    flat_is_finite,
    flatten_weights,
)
from fleet_protocol.errors import (
    AggregationError,
    DuplicateUpdateError,
    NonFiniteValueError,
    NoUpdatesError,
)
from fleet_protocol.messages import FitConfig
from fleet_protocol.types import ArrayState, Weights

HOLDS_STREAMING = "streaming O(model)"
HOLDS_ALL_UPDATES = "all updates O(clients x model)"
_DEVICE_IDS = "round/device_ids"
_NUM_EXAMPLES = "round/num_examples"


def as_float64(weights: Weights) -> list[np.ndarray]:
    """Copy tensors to float64 for accurate sums."""
    return [np.asarray(t, dtype=np.float64) for t in weights]


def apply_step(global_weights: Weights, step: list[np.ndarray]) -> Weights:
    """New global = global + step, as float32."""
    return [
        (np.asarray(g, dtype=np.float64) + s).astype(np.float32)
        for g, s in zip(global_weights, step, strict=True)
    ]


class Strategy(ABC):
    """Base of every server strategy: validates updates, tracks who contributed this round."""

    holds: ClassVar[str]

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] | None = None
        self.device_ids: list[str] = []
        self.num_examples: list[int] = []
        self._seen_devices: set[str] = set()

    def configure_fit(self, config: FitConfig) -> FitConfig:
        """The fit config devices receive (FedProx adds its proximal term)."""
        return config

    def begin_round(self, global_weights: Weights) -> None:
        """Start a round on this global model; forgets the previous round's updates."""
        self.shapes = [tuple(np.shape(t)) for t in global_weights]
        self.device_ids, self.num_examples, self._seen_devices = [], [], set()
        self._reset_round()

    def accumulate(self, delta: Weights, num_examples: int, device_id: str) -> None:
        """Fold in one validated update; raises a `FederationError` and changes nothing if bad."""
        if self.shapes is None:
            raise AggregationError("accumulate() before begin_round()")
        n = check_num_examples(num_examples)
        check_same_shapes(delta, self.shapes)
        if device_id in self._seen_devices:
            raise DuplicateUpdateError(f"device {device_id!r} already contributed this round")
        flat = flatten_weights(delta)
        if not flat_is_finite(flat):
            raise NonFiniteValueError(f"update from {device_id!r} holds NaN or infinity")
        self._add(delta, flat, n, device_id)
        self._seen_devices.add(device_id)
        self.device_ids.append(device_id)
        self.num_examples.append(n)

    def finish_round(self, global_weights: Weights) -> Weights:
        """Close the round: return the new global weights (`NoUpdatesError` if none came)."""
        if not self.device_ids:
            raise NoUpdatesError("round closed with no accepted updates")
        check_same_shapes(global_weights, self.shapes or [])
        return apply_step(global_weights, self._aggregate_step())

    def round_report(self) -> dict[str, float | int]:
        """Figures of the round just finished that belong in its metrics (none by default)."""
        return {}

    @property
    def num_updates(self) -> int:
        """Updates accepted in the current round."""
        return len(self.device_ids)

    def state_to_arrays(self) -> ArrayState:
        """Everything needed to resume the round (and the optimiser) after a crash."""
        state = self._state_to_arrays()
        state[_DEVICE_IDS] = np.array(self.device_ids, dtype=np.str_)
        state[_NUM_EXAMPLES] = np.array(self.num_examples, dtype=np.int64)
        for i, shape in enumerate(self.shapes or []):
            state[f"round/shape_{i}"] = np.array(shape, dtype=np.int64)
        return state

    def state_from_arrays(self, state: ArrayState) -> None:
        """Restore what `state_to_arrays` wrote."""
        num_shapes = sum(1 for key in state if key.startswith("round/shape_"))
        shapes = [tuple(int(d) for d in state[f"round/shape_{i}"]) for i in range(num_shapes)]
        self.shapes = shapes if num_shapes else None
        self.device_ids = [str(d) for d in state.get(_DEVICE_IDS, [])]
        self.num_examples = [int(n) for n in state.get(_NUM_EXAMPLES, [])]
        self._seen_devices = set(self.device_ids)
        self._state_from_arrays(state)

    @abstractmethod
    def _reset_round(self) -> None: ...

    @abstractmethod
    def _add(self, delta: Weights, flat: np.ndarray, num_examples: int, device_id: str) -> None:
        """Fold in an update that passed every check (shapes, count, finite, first of device).

        `flat` is the same update as one vector (made once, for the finiteness check).
        """

    @abstractmethod
    def _aggregate_step(self) -> list[np.ndarray]: ...

    @abstractmethod
    def _state_to_arrays(self) -> ArrayState: ...

    @abstractmethod
    def _state_from_arrays(self, state: ArrayState) -> None: ...


class StreamingStrategy(Strategy):
    """Keeps only a running weighted mean of the deltas (FedAvg and the server optimisers)."""

    holds = HOLDS_STREAMING

    def __init__(self) -> None:
        super().__init__()
        self.mean = WeightedMeanAccumulator()

    def _reset_round(self) -> None:
        self.mean = WeightedMeanAccumulator()

    def _add(self, delta: Weights, flat: np.ndarray, num_examples: int, device_id: str) -> None:
        self.mean.add_flat(flat, num_examples, self.shapes or [])

    def accumulate_sum(
        self, weighted_sum: np.ndarray, total_weight: int, device_ids: list[str]
    ) -> None:
        """Fold in other processes' sum of `num_examples * delta` (partial sums of workers).

        Only strategies whose `_add` is the plain weighted sum can take a sum made elsewhere.
        """
        if type(self)._add is not StreamingStrategy._add:
            raise AggregationError(f"{type(self).__name__} cannot fold partial sums")
        if self.shapes is None:
            raise AggregationError("accumulate_sum() before begin_round()")
        twice = self._seen_devices.intersection(device_ids)
        if twice:
            raise DuplicateUpdateError(f"devices {sorted(twice)} already contributed this round")
        if device_ids:
            self.mean.add_sum(weighted_sum, total_weight, len(device_ids), self.shapes)
        self._seen_devices.update(device_ids)
        self.device_ids.extend(device_ids)
        self.num_examples.append(total_weight)  # one entry per folded sum

    def mean_delta(self) -> list[np.ndarray]:
        """The weighted mean delta of the round, float64."""
        return self.mean.exact_result()

    def _state_to_arrays(self) -> ArrayState:
        return {f"mean/{k}": v for k, v in self.mean.to_arrays().items()}

    def _state_from_arrays(self, state: ArrayState) -> None:
        mean = {k.removeprefix("mean/"): v for k, v in state.items() if k.startswith("mean/")}
        self.mean = WeightedMeanAccumulator.from_arrays(mean)


class BufferedStrategy(Strategy):
    """Keeps every delta of the round (robust statistics need them all)."""

    holds = HOLDS_ALL_UPDATES

    def __init__(self) -> None:
        super().__init__()
        self.deltas: list[list[np.ndarray]] = []

    def _reset_round(self) -> None:
        self.deltas = []

    def _add(self, delta: Weights, flat: np.ndarray, num_examples: int, device_id: str) -> None:
        self.deltas.append(as_float64(delta))

    def stacked(self, tensor_index: int) -> np.ndarray:
        """One tensor of every update, stacked: (clients, *shape)."""
        return np.stack([d[tensor_index] for d in self.deltas])

    def flattened(self) -> np.ndarray:
        """Every update as one flat vector: (clients, model_size)."""
        return np.stack([np.concatenate([t.reshape(-1) for t in d]) for d in self.deltas])

    def _state_to_arrays(self) -> ArrayState:
        if not self.deltas:
            return {}
        return {f"updates/{i}": self.stacked(i) for i in range(len(self.deltas[0]))}

    def _state_from_arrays(self, state: ArrayState) -> None:
        num_tensors = sum(1 for key in state if key.startswith("updates/"))
        stacks = [np.asarray(state[f"updates/{i}"], np.float64) for i in range(num_tensors)]
        num_clients = stacks[0].shape[0] if stacks else 0
        self.deltas = [[s[c] for s in stacks] for c in range(num_clients)]
