"""Every strategy sums in float64: the round's step equals a float64 reference to 1e-12.

NumPy 2 computes `float32_array * python_int` in float32 (NEP 50), which once made FedAvg's
running sum lose about 1e-8 relative per update although it was stored in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.aggregation import WeightedMeanAccumulator
from aggregator.strategies import make_strategy

SHAPES = [(64, 16), (16,), (16, 3), (3,)]


def _updates(count: int, seed: int = 0) -> list[tuple[list[np.ndarray], int]]:
    rng = np.random.default_rng(seed)
    return [
        (
            [rng.normal(size=shape).astype(np.float32) for shape in SHAPES],
            int(rng.integers(1, 10**6)),
        )
        for _ in range(count)
    ]


def _exact_mean(updates: list[tuple[list[np.ndarray], int]]) -> list[np.ndarray]:
    total = sum(n for _, n in updates)
    return [
        sum(np.float64(n) * w[i].astype(np.float64) for w, n in updates) / total
        for i in range(len(SHAPES))
    ]


def test_accumulator_mean_is_exact_in_float64() -> None:
    # Prepare
    updates = _updates(50)
    accumulator = WeightedMeanAccumulator()

    # Execute
    for weights, n in updates:
        accumulator.add(weights, n)

    # Assert
    for got, want in zip(accumulator.exact_result(), _exact_mean(updates), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_accumulator_restored_from_arrays_stays_exact() -> None:
    updates = _updates(20, seed=1)
    first, rest = updates[:10], updates[10:]
    accumulator = WeightedMeanAccumulator()
    for weights, n in first:
        accumulator.add(weights, n)
    restored = WeightedMeanAccumulator.from_arrays(accumulator.to_arrays())
    for weights, n in rest:
        restored.add(weights, n)
    for got, want in zip(restored.exact_result(), _exact_mean(updates), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", ["fedavg", "fedprox"])
def test_streaming_strategy_step_is_the_exact_mean(name: str) -> None:
    # Prepare
    updates = _updates(30, seed=2)
    strategy = make_strategy(name)
    global_weights = [np.zeros(shape, np.float32) for shape in SHAPES]
    strategy.begin_round(global_weights)

    # Execute
    for i, (delta, n) in enumerate(updates):
        strategy.accumulate(delta, n, f"device-{i}")

    # Assert
    for got, want in zip(strategy.mean_delta(), _exact_mean(updates), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    new_global = strategy.finish_round(global_weights)
    for got, want in zip(new_global, _exact_mean(updates), strict=True):
        np.testing.assert_array_equal(got, want.astype(np.float32))
