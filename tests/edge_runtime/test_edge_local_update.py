"""The one local update: every announced FitConfig field reaches the training step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge_runtime.head import Head
from edge_runtime.local_update import local_update
from fleet_protocol.messages import FitConfig

BASE = FitConfig(local_epochs=3, batch_size=8, learning_rate=0.05)


def _data(seed: int = 0) -> tuple[Head, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.5, (6, 5)), np.zeros(5), rng.normal(0, 0.5, (5, 3)), np.zeros(3)]
    X = rng.normal(size=(40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    return Head.from_weights(weights, ("relu", "softmax")), X, y


def _max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def test_delta_is_trained_minus_start_and_the_head_is_untouched() -> None:
    # Prepare
    head, X, y = _data()
    before = [w.copy() for w in head.weights]

    # Execute
    update = local_update(head, BASE, X, y, seed=3)

    # Assert
    assert update.num_examples == 40 and update.loss is not None
    assert update.metrics() == {"loss": update.loss}
    for delta, trained, start in zip(update.delta, update.weights, before, strict=True):
        np.testing.assert_allclose(delta, trained - start, atol=1e-6)
    assert _max_difference(head.weights, before) == 0.0
    assert _max_difference(update.delta, [np.zeros_like(w) for w in before]) > 1e-3


@pytest.mark.parametrize(
    "announced",
    [{"momentum": 0.9}, {"l2": 0.05}, {"proximal_mu": 2.0}, {"optimizer": "adam"},
     {"local_epochs": 4}, {"batch_size": 16}, {"learning_rate": 0.1}],
)  # fmt: skip
def test_every_announced_setting_changes_the_update(announced: dict[str, object]) -> None:
    # Prepare
    head, X, y = _data()

    # Execute
    plain = local_update(head, BASE, X, y, seed=1)
    changed = local_update(head, replace(BASE, **announced), X, y, seed=1)  # type: ignore[arg-type]

    # Assert
    assert _max_difference(plain.delta, changed.delta) > 1e-5


def test_the_same_seed_gives_the_same_update_and_another_seed_does_not() -> None:
    # Prepare
    head, X, y = _data()

    # Execute
    first, again = (local_update(head, BASE, X, y, seed=5) for _ in range(2))
    other = local_update(head, BASE, X, y, seed=6)

    # Assert
    assert _max_difference(first.delta, again.delta) == 0.0
    assert _max_difference(first.delta, other.delta) > 0.0
