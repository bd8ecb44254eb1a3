"""The pooled baseline chooses how long to train on held-out devices, never on test windows."""

from __future__ import annotations

import numpy as np

from edge_runtime.head import Head
from iomt.simulation.baselines import (
    DeviceData,
    Split,
    accuracy,
    central_config,
    pooled_passes,
    pooled_upper_bound,
)


def _head() -> Head:
    """A linear two-class head on 2-d embeddings that calls class 1 when x0 > 0."""
    kernel = np.array([[-1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    return Head.from_weights([kernel, np.zeros(2, dtype=np.float32)], ["softmax"])


def _device(name: str, rule: int, rng: np.random.Generator) -> DeviceData:
    """Windows whose class is x0 > 0 (rule 1), x0 < 0 (rule -1) or x1 > 0 (rule 2)."""
    X = rng.normal(size=(80, 2)).astype(np.float32)
    y = (X[:, 1] > 0) if rule == 2 else (rule * X[:, 0] > 0)
    split = Split(X, y.astype(np.int64))
    return DeviceData(name, 0, split, split)


def test_pooled_keeps_the_pretrained_head_when_training_hurts_held_out_devices() -> None:
    # Prepare: every device's labels contradict every other's
    rng = np.random.default_rng(0)
    devices = [_device("a", 1, rng), _device("b", -1, rng), _device("c", 1, rng),
               _device("d", -1, rng)]  # fmt: skip
    config = central_config(rounds=4, local_epochs=5, learning_rate=0.1, momentum=0.9)
    # Execute
    passes = pooled_passes(_head(), devices, config)
    # Assert
    assert passes == 0


def test_pooled_trains_when_held_out_devices_gain() -> None:
    # Prepare: every device follows the rule the pretrained head does not know
    rng = np.random.default_rng(1)
    devices = [_device(name, 2, rng) for name in "abcd"]
    test = _device("test", 2, rng).train
    config = central_config(rounds=4, local_epochs=5, learning_rate=0.1, momentum=0.9)
    # Execute
    passes = pooled_passes(_head(), devices, config)
    pooled = pooled_upper_bound(_head(), devices, test, config)
    # Assert
    assert passes > 0
    assert pooled > accuracy(_head(), test) + 0.2
