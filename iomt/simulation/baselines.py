"""The comparisons a simulation report makes, all on backbone embeddings with the numpy head.

Pure: arrays in, accuracies out. The same `fine_tune` a device runs trains every baseline, so the
numbers differ only in *which data* a head saw: pretrained-only (none of the devices' data),
local-only (one device's), pooled upper bound (every device's, centrally), and personalised (the
federated head, then one device's own earlier windows, scored on its later windows).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edge_runtime.fine_tune import FineTuneConfig, fine_tune
from edge_runtime.head import Head

CENTRAL_TRAINING = FineTuneConfig(
    epochs=40, batch_size=32, learning_rate=3e-3, optimizer="adam", class_weights="balanced"
)
PERSONALISATION = FineTuneConfig(
    epochs=10,
    batch_size=16,
    learning_rate=1e-3,
    optimizer="adam",
    proximal_mu=0.1,
    class_weights="balanced",
)


@dataclass(frozen=True)
class Split:
    """Embeddings `(windows, dim)` and labels."""

    X: np.ndarray
    y: np.ndarray

    @staticmethod
    def concatenate(parts: list[Split]) -> Split:
        return Split(np.concatenate([p.X for p in parts]), np.concatenate([p.y for p in parts]))


@dataclass(frozen=True)
class DeviceData:
    """One device's earlier (trainable) and later (evaluation-only) windows, embedded."""

    device_id: str
    subject: int
    train: Split
    later: Split


def accuracy(head: Head, data: Split) -> float:
    """Top-1 accuracy of a head on embedded windows."""
    return float(np.mean(head.predict(data.X) == data.y)) if len(data.y) else float("nan")


def _trained(start: Head, data: Split, config: FineTuneConfig) -> Head:
    present = np.unique(data.y)
    config = replace(config, class_weights=None) if len(present) < 2 else config
    result = fine_tune(start.weights, start.activations, data.X, data.y, config)
    return Head(result.weights, start.activations)


def pooled_upper_bound(
    pretrained: Head,
    devices: list[DeviceData],
    test: Split,
    config: FineTuneConfig = CENTRAL_TRAINING,
) -> float:
    """A head trained centrally on every device's earlier windows, scored on the test subjects."""
    pooled = Split.concatenate([d.train for d in devices])
    return accuracy(_trained(pretrained, pooled, config), test)


def local_only(
    pretrained: Head,
    devices: list[DeviceData],
    test: Split,
    config: FineTuneConfig = CENTRAL_TRAINING,
) -> dict[str, float]:
    """Each device alone: its own head from the pretrained one, scored on the test subjects."""
    return {d.device_id: accuracy(_trained(pretrained, d.train, config), test) for d in devices}


def personalisation(
    global_head: Head, devices: list[DeviceData], config: FineTuneConfig = PERSONALISATION
) -> dict[str, tuple[float, float]]:
    """(global, personalised) accuracy of each device on its own later windows."""
    return {
        d.device_id: (
            accuracy(global_head, d.later),
            accuracy(_trained(global_head, d.train, config), d.later),
        )
        for d in devices
    }
