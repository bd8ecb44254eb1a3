"""The comparisons a simulation report makes, all on backbone embeddings with the numpy head.

Pure: arrays in, accuracies out. The same `local_update` a device runs trains every baseline, so
the numbers differ only in *which data* a head saw: pretrained-only (none of the devices' data),
local-only (one device's), pooled (every device's, centrally: `iomt.simulation.pooled`), and
personalised (the federated head, then one device's own earlier windows, scored on its later
windows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_runtime.head import Head
from edge_runtime.local_update import local_update
from fleet_protocol.messages import FitConfig

# Every baseline weights classes as balanced (a device's round does not).
CENTRAL_TRAINING = FitConfig(local_epochs=40, batch_size=32, learning_rate=3e-3, optimizer="adam")
PERSONALISATION = FitConfig(
    local_epochs=10, batch_size=16, learning_rate=1e-3, optimizer="adam", proximal_mu=0.1
)
BASELINE_SEED = 0


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


def accuracy_per_subject(
    heads: dict[str, Head], data: Split, subject: np.ndarray
) -> dict[int, dict[str, float]]:
    """Each head's top-1 accuracy on each subject's windows (`subject` labels `data`'s rows).

    A mean over windows hides how many people a head helps; person by person shows it.
    """
    right = {name: head.predict(data.X) == data.y for name, head in heads.items()}
    return {
        int(s): {name: float(np.mean(r[subject == s])) for name, r in right.items()}
        for s in np.unique(subject)
    }


def trained_head(start: Head, data: Split, config: FitConfig) -> Head:
    """`config` run centrally from `start` on `data`, classes weighted as balanced."""
    balanced = len(np.unique(data.y)) >= 2
    update = local_update(start, config, data.X, data.y, BASELINE_SEED,
                          class_weights="balanced" if balanced else None)  # fmt: skip
    return Head(update.weights, start.activations)


def local_only(
    pretrained: Head,
    devices: list[DeviceData],
    test: Split,
    config: FitConfig = CENTRAL_TRAINING,
) -> dict[str, float]:
    """Each device alone: its own head from the pretrained one, scored on the test subjects."""
    return {d.device_id: accuracy(trained_head(pretrained, d.train, config), test) for d in devices}


def personalisation(
    global_head: Head, devices: list[DeviceData], config: FitConfig = PERSONALISATION
) -> dict[str, tuple[float, float]]:
    """(global, personalised) accuracy of each device on its own later windows."""
    return {
        d.device_id: (
            accuracy(global_head, d.later),
            accuracy(trained_head(global_head, d.train, config), d.later),
        )
        for d in devices
    }
