"""The comparisons a simulation report makes, all on backbone embeddings with the numpy head.

Pure: arrays in, accuracies out. The same `local_update` a device runs trains every baseline, so
the numbers differ only in *which data* a head saw: pretrained-only (none of the devices' data),
local-only (one device's), pooled upper bound (every device's, centrally), and personalised (the
federated head, then one device's own earlier windows, scored on its later windows).

The pooled upper bound is what federation would reach if the devices could pool their data:
the same int8 backbone, the same head start, the same optimiser (`central_config`), on exactly
the windows the devices hold, plus what a central trainer can do that a fleet cannot: choose how
long to train by validating on whole devices it held out (`pooled_passes`). Trained for every
pass the fleet made instead, the pooled head fits the device subjects harder than FedAvg's
averaged heads (higher training accuracy) and on stress scored below them on new subjects
(docs/data.md has the figures).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
PASS_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 1.0)  # of the fleet's passes, for `pooled_passes`


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


def _trained(start: Head, data: Split, config: FitConfig) -> Head:
    balanced = len(np.unique(data.y)) >= 2
    update = local_update(start, config, data.X, data.y, BASELINE_SEED,
                          class_weights="balanced" if balanced else None)  # fmt: skip
    return Head(update.weights, start.activations)


def central_config(
    rounds: int, local_epochs: int, learning_rate: float, momentum: float
) -> FitConfig:
    """The fleet's own fine-tuning, run centrally: as many passes as `rounds` x `local_epochs`."""
    return FitConfig(
        local_epochs=max(1, rounds * local_epochs),
        batch_size=32,
        learning_rate=learning_rate,
        optimizer="sgd",
        momentum=momentum,
    )


def pooled_passes(pretrained: Head, devices: list[DeviceData], config: FitConfig) -> int:
    """Passes (a `PASS_FRACTIONS` share of `config`'s) with the best leave-one-device-out accuracy.

    Each device in turn is held out, the head is trained on the others' earlier windows and
    scored on the held-out device's; 0 passes keeps the pretrained head. Only the devices'
    earlier windows are used: neither the test subjects nor any later window.
    """
    candidates = sorted({round(f * config.local_epochs) for f in PASS_FRACTIONS})
    if len(devices) < 2:
        return config.local_epochs
    scores = []
    for passes in candidates:
        held_out = [
            accuracy(_trained_for(pretrained, _others(devices, d), config, passes), d.train)
            for d in devices
        ]
        scores.append(float(np.mean(held_out)))
    return candidates[int(np.argmax(scores))]


def pooled_upper_bound(
    pretrained: Head,
    devices: list[DeviceData],
    test: Split,
    config: FitConfig = CENTRAL_TRAINING,
) -> float:
    """A head trained centrally on every device's earlier windows, scored on the test subjects.

    Pass `central_config(...)` for the bound on the fleet's own terms (what `iomt simulate`
    does); the number of passes is chosen by `pooled_passes`, at most the fleet's.
    """
    pooled = Split.concatenate([d.train for d in devices])
    passes = pooled_passes(pretrained, devices, config)
    return accuracy(_trained_for(pretrained, pooled, config, passes), test)


def _others(devices: list[DeviceData], held_out: DeviceData) -> Split:
    return Split.concatenate([d.train for d in devices if d is not held_out])


def _trained_for(start: Head, data: Split, config: FitConfig, passes: int) -> Head:
    """`config` run for `passes` epochs; 0 passes is the start head itself."""
    return start if passes == 0 else _trained(start, data, replace(config, local_epochs=passes))


def local_only(
    pretrained: Head,
    devices: list[DeviceData],
    test: Split,
    config: FitConfig = CENTRAL_TRAINING,
) -> dict[str, float]:
    """Each device alone: its own head from the pretrained one, scored on the test subjects."""
    return {d.device_id: accuracy(_trained(pretrained, d.train, config), test) for d in devices}


def personalisation(
    global_head: Head, devices: list[DeviceData], config: FitConfig = PERSONALISATION
) -> dict[str, tuple[float, float]]:
    """(global, personalised) accuracy of each device on its own later windows."""
    return {
        d.device_id: (
            accuracy(global_head, d.later),
            accuracy(_trained(global_head, d.train, config), d.later),
        )
        for d in devices
    }
