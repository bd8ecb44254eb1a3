"""The pooled row chooses its recipe on held-out devices, and one candidate is the fleet's own."""

from __future__ import annotations

import numpy as np

from edge_runtime.head import Head
from edge_runtime.local_update import local_update
from edge_runtime.round_core import round_seed
from fleet_protocol.messages import FitConfig
from iomt.simulation.baselines import DeviceData, Split, accuracy
from iomt.simulation.pooled import (
    central_recipes,
    choose_recipe,
    federated_average,
    fleet_procedure,
    pooled_head,
)

FLEET = FitConfig(local_epochs=5, batch_size=32, learning_rate=0.1, momentum=0.9)


def _head() -> Head:
    """A linear two-class head on 2-d embeddings that calls class 1 when x0 > 0."""
    kernel = np.array([[-1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    return Head.from_weights([kernel, np.zeros(2, dtype=np.float32)], ["softmax"])


def _device(name: str, rule: int, rng: np.random.Generator, n: int = 80) -> DeviceData:
    """Windows whose class is x0 > 0 (rule 1), x0 < 0 (rule -1) or x1 > 0 (rule 2)."""
    X = rng.normal(size=(n, 2)).astype(np.float32)
    y = (X[:, 1] > 0) if rule == 2 else (rule * X[:, 0] > 0)
    split = Split(X, y.astype(np.int64))
    return DeviceData(name, 0, split, split)


def test_pooled_keeps_the_pretrained_head_when_training_hurts_held_out_devices() -> None:
    # Prepare: the pretrained head's rule on one device, its opposite on the other, so what
    # either teaches can only lose on the other
    rng = np.random.default_rng(0)
    devices = [_device("a", 1, rng), _device("b", -1, rng)]
    # Execute
    result = pooled_head(_head(), devices, FLEET, rounds=4, seed=0)
    # Assert
    assert result.recipe == "pretrained head (no training)"
    for got, want in zip(result.head.weights, _head().weights, strict=True):
        np.testing.assert_array_equal(got, want)


def test_pooled_trains_when_held_out_devices_gain() -> None:
    # Prepare: every device follows the rule the pretrained head does not know
    rng = np.random.default_rng(1)
    devices = [_device(name, 2, rng) for name in "abcd"]
    test = _device("test", 2, rng).train
    # Execute
    result = pooled_head(_head(), devices, FLEET, rounds=4, seed=0)
    # Assert
    assert result.recipe != "pretrained head (no training)"
    assert accuracy(result.head, test) > accuracy(_head(), test) + 0.2


def test_the_chosen_recipe_validates_at_least_as_well_as_the_fleets_procedure() -> None:
    # Prepare: devices that disagree in part, so recipes differ on held-out devices
    rng = np.random.default_rng(2)
    devices = [_device("a", 2, rng), _device("b", 1, rng), _device("c", 2, rng),
               _device("d", 2, rng, n=30)]  # fmt: skip
    recipes = central_recipes(FLEET, rounds=3)
    # Execute
    chosen, scores = choose_recipe(recipes, _head(), devices, seed=0)
    # Assert
    assert fleet_procedure(FLEET, 3) in recipes
    assert scores[chosen.name] == max(scores.values())
    assert scores[chosen.name] >= scores[fleet_procedure(FLEET, 3).name]
    assert len(set(scores.values())) > 1  # the candidates are not all the same head


def test_federated_average_is_the_sample_weighted_mean_of_the_devices_updates() -> None:
    # Prepare
    rng = np.random.default_rng(3)
    devices = [_device("a", 2, rng, n=60), _device("b", 1, rng, n=20)]
    start = _head()
    # Execute
    head = federated_average(start, devices, FLEET, rounds=1, seed=7)
    # Assert: one round by hand, each device with its own round seed
    updates = [local_update(start, FLEET, d.train.X, d.train.y, round_seed(7, d.device_id, 1))
               for d in devices]  # fmt: skip
    for layer, got in enumerate(head.weights):
        mean = (60 * updates[0].delta[layer] + 20 * updates[1].delta[layer]) / 80
        np.testing.assert_allclose(got, start.weights[layer] + mean, atol=1e-5)


def test_one_device_keeps_the_fleets_procedure() -> None:
    # Prepare: nothing to hold out
    rng = np.random.default_rng(4)
    devices = [_device("a", 2, rng)]
    # Execute
    result = pooled_head(_head(), devices, FLEET, rounds=2, seed=0)
    # Assert
    assert result.recipe == fleet_procedure(FLEET, 2).name
    assert result.validation == {}
    expected = federated_average(_head(), devices, FLEET, 2, 0)
    for got, want in zip(result.head.weights, expected.weights, strict=True):
        np.testing.assert_array_equal(got, want)
