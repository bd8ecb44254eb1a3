"""Robust strategies on literal cases: one poisoned client must not drag the global model."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.strategies import (
    FedAvg,
    FedMedian,
    FLTrust,
    Krum,
    MultiKrum,
    Strategy,
    TrimmedMean,
)
from aggregator.strategies.krum import krum_scores
from aggregator.strategies.trimmed_mean import trimmed_mean
from fleet_protocol.errors import AggregationError

ZERO = [np.zeros(3, dtype=np.float32)]
HONEST = [[0.9, 1.0, 1.1], [1.0, 1.1, 0.9], [1.1, 0.9, 1.0], [1.0, 1.0, 1.0]]
POISON = [-10.0, -10.0, -10.0]  # sign-flipped and scaled x10


def run(strategy: Strategy, rows: list[list[float]], server: list[float] | None = None):
    """One round from ZERO with one update per row (10 examples each); returns the step."""
    strategy.begin_round(ZERO)
    if server is not None and isinstance(strategy, FLTrust):
        strategy.set_server_update([np.array(server, dtype=np.float32)])
    for i, row in enumerate(rows):
        strategy.accumulate([np.array(row, dtype=np.float32)], 10, f"d{i}")
    return strategy.finish_round(ZERO)[0]


def test_fedavg_is_dragged_by_the_outlier() -> None:
    step = run(FedAvg(), [*HONEST, POISON])
    assert np.all(step < -1.0)


@pytest.mark.parametrize(
    "strategy",
    [FedMedian(), TrimmedMean(beta=0.2), Krum(num_malicious=1), MultiKrum(num_malicious=1)],
    ids=["median", "trimmed-mean", "krum", "multi-krum"],
)
def test_robust_strategies_resist_one_outlier(strategy: Strategy) -> None:
    step = run(strategy, [*HONEST, POISON])
    np.testing.assert_allclose(step, [1.0, 1.0, 1.0], atol=0.11)


def test_median_literal() -> None:
    step = run(FedMedian(), [[1, 5, 0], [2, 6, 0], [100, -100, 0]])
    np.testing.assert_array_equal(step, [2, 5, 0])


def test_trimmed_mean_literal() -> None:
    values = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])
    np.testing.assert_allclose(trimmed_mean(values, 0.2), [3.0])
    np.testing.assert_allclose(trimmed_mean(values, 0.0), [22.0])


def test_krum_scores_rank_the_outlier_last() -> None:
    flat = np.array([*HONEST, POISON])
    scores = krum_scores(flat, num_malicious=1)
    assert int(np.argmax(scores)) == 4


def test_krum_picks_one_update_and_multi_krum_averages_honest() -> None:
    # Execute
    krum = Krum(num_malicious=1)
    run(krum, [*HONEST, POISON])
    multi = MultiKrum(num_malicious=1)
    step = run(multi, [*HONEST, POISON])
    # Assert
    assert len(krum.selected()) == 1 and 4 not in krum.selected()
    assert sorted(multi.selected()) == [0, 1, 2, 3]
    np.testing.assert_allclose(step, np.mean(HONEST, axis=0), atol=1e-6)


def test_fltrust_ignores_opposite_update_and_clips_scaled_one() -> None:
    # Prepare
    server = [1.0, 1.0, 1.0]
    scaled_honest = [10.0, 10.0, 10.0]
    # Execute
    strategy = FLTrust()
    step = run(strategy, [[1.0, 1.0, 1.0], scaled_honest, POISON], server)
    # Assert: poison gets trust 0, the scaled one is rescaled to the server norm
    assert strategy.trust_scores[2] == 0.0
    np.testing.assert_allclose(step, [1.0, 1.0, 1.0], rtol=1e-6)


def test_fltrust_with_no_trusted_update_keeps_global() -> None:
    step = run(FLTrust(), [POISON], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(step, [0.0, 0.0, 0.0])


def test_fltrust_server_update_fn_called_at_round_start() -> None:
    # Prepare
    seen = []

    def root_update(global_weights):
        seen.append(global_weights)
        return [np.ones(3, dtype=np.float32)]

    # Execute
    step = run(FLTrust(server_update_fn=root_update), [[2.0, 2.0, 2.0]])
    # Assert
    assert len(seen) == 1
    np.testing.assert_allclose(step, [1.0, 1.0, 1.0], rtol=1e-6)


def test_fltrust_requires_server_update() -> None:
    strategy = FLTrust()
    strategy.begin_round(ZERO)
    with pytest.raises(AggregationError):
        strategy.accumulate([np.ones(3, dtype=np.float32)], 1, "d1")
