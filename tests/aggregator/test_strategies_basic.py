"""Weighted aggregation, FedAvg/FedProx/FedAdam/FedYogi, the registry, crash-safe state."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.aggregation import (
    WeightedMeanAccumulator,
    aggregate_weighted,
)
from aggregator.strategies import (
    HOLDS_ALL_UPDATES,
    HOLDS_STREAMING,
    STRATEGIES,
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
    Strategy,
    make_strategy,
)
from fleet_protocol.array_blobs import arrays_from_bytes, arrays_to_bytes
from fleet_protocol.errors import (
    AggregationError,
    DuplicateUpdateError,
    NonFiniteValueError,
    NoUpdatesError,
    ShapeMismatchError,
    StrategyConfigError,
)
from fleet_protocol.messages import FitConfig

GLOBAL = [np.array([[1.0, 2.0]], dtype=np.float32), np.array([0.5], dtype=np.float32)]


def gen_delta(a: float, b: float, c: float) -> list[np.ndarray]:
    """A delta shaped like GLOBAL."""
    return [np.array([[a, b]], dtype=np.float32), np.array([c], dtype=np.float32)]


UPDATES = [
    (gen_delta(1.0, 0.0, 0.2), 10, "d1"),
    (gen_delta(3.0, -1.0, 0.0), 30, "d2"),
    (gen_delta(-1.0, 2.0, 0.4), 20, "d3"),
    (gen_delta(0.5, 0.5, 0.1), 40, "d4"),
]


def run_round(strategy: Strategy, updates=UPDATES, global_weights=GLOBAL) -> list[np.ndarray]:
    """One full round; FLTrust gets the mean honest direction as its root update."""
    strategy.begin_round(global_weights)
    if hasattr(strategy, "set_server_update"):
        strategy.set_server_update(gen_delta(1.0, 0.5, 0.1))
    for delta, num_examples, device_id in updates:
        strategy.accumulate(delta, num_examples, device_id)
    return strategy.finish_round(global_weights)


def test_aggregate_weighted_literal() -> None:
    # Prepare
    results = [([np.array([1.0, 0.0], dtype=np.float32)], 1), ([np.array([3.0, 4.0])], 3)]
    # Execute
    mean = aggregate_weighted(results)
    # Assert
    np.testing.assert_allclose(mean[0], [2.5, 3.0])
    assert mean[0].dtype == np.float32


def test_streaming_equals_batch_and_survives_serialisation() -> None:
    # Prepare
    accumulator = WeightedMeanAccumulator()
    for delta, n, _ in UPDATES[:2]:
        accumulator.add(delta, n)
    # Execute: persist to bytes mid-way, restore, continue
    restored = WeightedMeanAccumulator.from_arrays(
        arrays_from_bytes(arrays_to_bytes(accumulator.to_arrays()))
    )
    for delta, n, _ in UPDATES[2:]:
        restored.add(delta, n)
    # Assert
    batch = aggregate_weighted([(d, n) for d, n, _ in UPDATES])
    for got, want in zip(restored.result(), batch, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-7)
    assert restored.count == 4 and restored.total_examples == 100


def test_accumulator_rejects_bad_input() -> None:
    accumulator = WeightedMeanAccumulator()
    with pytest.raises(NoUpdatesError):
        accumulator.result()
    with pytest.raises(AggregationError):
        accumulator.add(GLOBAL, 0)
    accumulator.add(GLOBAL, 1)
    with pytest.raises(ShapeMismatchError):
        accumulator.add([GLOBAL[0]], 1)


def test_fedavg_is_global_plus_weighted_mean_delta() -> None:
    # Execute
    new = run_round(FedAvg())
    # Assert: mean deltas (10 + 90 - 20 + 20) / 100 = 1.0, (-30 + 40 + 20) / 100 = 0.3,
    # (2 + 8 + 4) / 100 = 0.14
    np.testing.assert_allclose(new[0], [[2.0, 2.3]], rtol=1e-6)
    np.testing.assert_allclose(new[1], [0.64], rtol=1e-6)


def test_fedavg_server_learning_rate_scales_step() -> None:
    new = run_round(FedAvg(server_learning_rate=0.5))
    np.testing.assert_allclose(new[0], [[1.5, 2.15]], rtol=1e-6)


def test_fedprox_sets_proximal_mu_and_aggregates_like_fedavg() -> None:
    # Prepare
    strategy = FedProx(proximal_mu=0.3)
    # Execute
    config = strategy.configure_fit(FitConfig(local_epochs=2))
    # Assert
    assert config == FitConfig(local_epochs=2, proximal_mu=0.3)
    for got, want in zip(run_round(strategy), run_round(FedAvg()), strict=True):
        np.testing.assert_array_equal(got, want)


def test_fedadam_first_step_literal() -> None:
    # Prepare: one client, delta 1.0 -> m = 0.1, v = 0.01, step = eta * 0.1 / (0.1 + tau)
    strategy = FedAdam(eta=0.01, beta_1=0.9, beta_2=0.99, tau=1e-3)
    one = [np.array([0.0], dtype=np.float32)]
    # Execute
    new = run_round(strategy, [([np.array([1.0], np.float32)], 5, "d1")], one)
    # Assert
    np.testing.assert_allclose(new[0], [0.01 * 0.1 / 0.101], rtol=1e-6)


def test_fedyogi_second_moment_decays_slower_than_adam_after_a_spike() -> None:
    # Prepare: Adam v = 1.0 then 0.99 + 0.0001; Yogi v = 1.0 then 1.0 - 0.0001
    zero = [np.array([0.0], dtype=np.float32)]
    rounds = [10.0, 0.1]
    adam, yogi = FedAdam(), FedYogi()
    # Execute
    for value in rounds:
        update = [([np.array([value], np.float32)], 1, "d1")]
        run_round(adam, update, zero)
        run_round(yogi, update, zero)
    # Assert
    assert adam.v is not None and yogi.v is not None
    np.testing.assert_allclose([adam.v[0][0], yogi.v[0][0]], [0.9901, 0.9999], rtol=1e-5)


def test_registry_names_and_holds() -> None:
    assert set(STRATEGIES) == {
        "fedavg",
        "fedprox",
        "fedadam",
        "fedyogi",
        "median",
        "trimmed-mean",
        "krum",
        "multi-krum",
        "fltrust",
    }
    assert make_strategy("fedadam").holds == HOLDS_STREAMING
    assert make_strategy("median").holds == HOLDS_ALL_UPDATES


def test_registry_rejects_unknown_name_and_options() -> None:
    with pytest.raises(StrategyConfigError):
        make_strategy("fedsgd")
    with pytest.raises(StrategyConfigError):
        make_strategy("fedavg", momentum=0.9)
    with pytest.raises(StrategyConfigError):
        make_strategy("trimmed-mean", beta=0.5)


def test_strategy_rejects_duplicates_shapes_nan_and_empty_rounds() -> None:
    # Prepare
    strategy = FedAvg()
    strategy.begin_round(GLOBAL)
    strategy.accumulate(*UPDATES[0])
    # Execute / Assert
    with pytest.raises(DuplicateUpdateError):
        strategy.accumulate(*UPDATES[0])
    with pytest.raises(ShapeMismatchError):
        strategy.accumulate([GLOBAL[0]], 5, "d9")
    with pytest.raises(NonFiniteValueError):
        strategy.accumulate(gen_delta(np.nan, 0, 0), 5, "d9")
    assert strategy.num_updates == 1
    strategy.begin_round(GLOBAL)
    with pytest.raises(NoUpdatesError):
        strategy.finish_round(GLOBAL)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_crash_and_restore_mid_round_gives_same_global(name: str) -> None:
    # Prepare: two rounds uninterrupted
    reference = make_strategy(name)
    run_round(reference)
    expected = run_round(reference)
    # Execute: same two rounds, but "crash" after two updates of round 2 and restore from bytes
    survivor = make_strategy(name)
    run_round(survivor)
    survivor.begin_round(GLOBAL)
    if hasattr(survivor, "set_server_update"):
        survivor.set_server_update(gen_delta(1.0, 0.5, 0.1))
    for update in UPDATES[:2]:
        survivor.accumulate(*update)
    restored = make_strategy(name)
    restored.state_from_arrays(arrays_from_bytes(arrays_to_bytes(survivor.state_to_arrays())))
    for update in UPDATES[2:]:
        restored.accumulate(*update)
    got = restored.finish_round(GLOBAL)
    # Assert
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, atol=1e-6)
    with pytest.raises(DuplicateUpdateError):
        restored.accumulate(*UPDATES[0])


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_restoring_empty_state_gives_a_fresh_strategy(name: str) -> None:
    # Prepare
    strategy = make_strategy(name)
    # Execute
    strategy.state_from_arrays({})
    # Assert
    assert strategy.num_updates == 0
    assert run_round(strategy)[0].shape == (1, 2)


small_floats = st.floats(-100, 100, allow_nan=False, width=32)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(small_floats, min_size=3, max_size=3), st.integers(1, 1000)),
        min_size=1,
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_streaming_fedavg_equals_batch_in_any_arrival_order(rows, random) -> None:
    # Prepare
    updates = [([np.array(row, dtype=np.float32)], n) for row, n in rows]
    shuffled = list(enumerate(updates))
    random.shuffle(shuffled)
    zero = [np.zeros(3, dtype=np.float32)]
    strategy = FedAvg()
    strategy.begin_round(zero)
    # Execute
    for i, (delta, n) in shuffled:
        strategy.accumulate(delta, n, f"d{i}")
    streamed = strategy.finish_round(zero)
    # Assert
    expected = np.average([u[0][0] for u in updates], axis=0, weights=[u[1] for u in updates])
    np.testing.assert_allclose(streamed[0], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(aggregate_weighted(updates)[0], expected, rtol=1e-5, atol=1e-5)
