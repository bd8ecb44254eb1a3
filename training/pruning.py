"""Magnitude pruning with tensorflow-model-optimization (polynomial decay to a target sparsity).

Only the backbone is pruned: the head stays dense because devices fine-tune it and would refill
any zeros anyway. `measure_sparsity` counts zeros in the kernels that were pruned, which is the
figure the target refers to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from training.keras_backend import import_keras, import_tfmot
from training.models.config import HEAD_LAYERS

_PRUNABLE_TYPES = ("Conv1D", "Dense", "LSTM")


@dataclass(frozen=True)
class PruningSchedule:
    """Polynomial decay from 0 to `target_sparsity` between two optimiser steps."""

    target_sparsity: float
    begin_step: int
    end_step: int
    frequency: int = 20


def prunable_layer_names(model: Any) -> list[str]:
    """Backbone layers whose kernels are pruned."""
    return [
        layer.name
        for layer in model.layers
        if type(layer).__name__ in _PRUNABLE_TYPES and layer.name not in HEAD_LAYERS
    ]


def wrap_for_pruning(model: Any, schedule: PruningSchedule) -> Any:
    """Clone `model` with its backbone layers wrapped by `prune_low_magnitude`."""
    _, keras = import_keras()
    tfmot = import_tfmot()
    sparsity = tfmot.sparsity.keras
    decay = sparsity.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=schedule.target_sparsity,
        begin_step=schedule.begin_step,
        end_step=schedule.end_step,
        frequency=schedule.frequency,
    )
    names = set(prunable_layer_names(model))

    def wrap(layer: Any) -> Any:
        if layer.name in names:
            return sparsity.prune_low_magnitude(layer, pruning_schedule=decay)
        return layer

    return keras.models.clone_model(model, clone_function=wrap)


def pruning_callbacks() -> list[Any]:
    """The callback tfmot needs to advance its step counter during `fit`."""
    return [import_tfmot().sparsity.keras.UpdatePruningStep()]


def strip_pruning(model: Any) -> Any:
    """Remove the pruning wrappers, keeping the zeroed weights."""
    return import_tfmot().sparsity.keras.strip_pruning(model)


def measure_sparsity(model: Any) -> float:
    """Fraction of exact zeros in the kernels of the pruned (backbone) layers."""
    zeros = total = 0
    for name in prunable_layer_names(model):
        layer = model.get_layer(name)
        for weight in layer.trainable_weights:
            if "bias" in weight.name:
                continue
            values = np.asarray(weight.numpy())
            zeros += int(np.count_nonzero(values == 0))
            total += values.size
    return zeros / total if total else 0.0
