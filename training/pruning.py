"""Magnitude pruning with tensorflow-model-optimization (polynomial decay to a target sparsity).

Only the backbone is pruned: the head stays dense because devices fine-tune it and would refill
any zeros anyway. tfmot cannot wrap `Bidirectional`, so a `Bidirectional` is swapped for a
copy that tells tfmot its prunable weights (the kernel and recurrent kernel of both
directions); once stripped, the layer is a plain `Bidirectional` again as far as the saved
weights go. `measure_sparsity` is the one measurement `metrics.json`, the bundle manifest and
`iomt convert` all report: zeros over every kernel and recurrent kernel of the backbone,
counted on whatever model it is given (the trainer and the converter give it the saved one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from training.keras_backend import import_keras, import_tfmot
from training.models.config import HEAD_LAYERS

_PRUNABLE_TYPES = ("Conv1D", "Dense", "LSTM", "Bidirectional", "PrunableBidirectional")


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
    copied: list[str] = []

    def wrap(layer: Any) -> Any:
        if layer.name not in names:
            return layer
        if isinstance(layer, keras.layers.Bidirectional):
            copied.append(layer.name)
            layer = _prunable_bidirectional().from_config(layer.get_config())
        return sparsity.prune_low_magnitude(layer, pruning_schedule=decay)

    pruned = keras.models.clone_model(model, clone_function=wrap)
    for name in copied:  # the copies were built fresh: give them the trained weights
        wrapper = pruned.get_layer(f"prune_low_magnitude_{name}")
        wrapper.layer.set_weights(model.get_layer(name).get_weights())
    return pruned


def _prunable_bidirectional() -> Any:
    """`Bidirectional` that names its kernels for tfmot (which only needs this one method)."""
    _, keras = import_keras()

    class PrunableBidirectional(keras.layers.Bidirectional):  # type: ignore[name-defined]
        def get_prunable_weights(self) -> list[Any]:
            cells = (self.forward_layer.cell, self.backward_layer.cell)
            return [w for cell in cells for w in (cell.kernel, cell.recurrent_kernel)]

    return PrunableBidirectional


def pruning_callbacks() -> list[Any]:
    """The callback tfmot needs to advance its step counter during `fit`."""
    return [import_tfmot().sparsity.keras.UpdatePruningStep()]


def strip_pruning(model: Any) -> Any:
    """Remove the pruning wrappers, keeping the zeroed weights."""
    return import_tfmot().sparsity.keras.strip_pruning(model)


def pruned_weights(model: Any) -> list[Any]:
    """Every kernel and recurrent kernel of the backbone: what the sparsity target applies to."""
    return [
        weight
        for name in prunable_layer_names(model)
        for weight in model.get_layer(name).weights
        if _weight_name(weight).endswith(("kernel", "kernel:0"))
    ]


def _weight_name(weight: Any) -> str:
    return str(weight.name).rsplit("/", 1)[-1]


def measure_sparsity(model: Any) -> float:
    """Fraction of exact zeros over `pruned_weights(model)` (biases and the head excluded)."""
    zeros = total = 0
    for weight in pruned_weights(model):
        values = np.asarray(weight.numpy())
        zeros += int(np.count_nonzero(values == 0))
        total += values.size
    return zeros / total if total else 0.0
