"""Pruning reaches its target sparsity on the backbone and leaves the head dense."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def test_pruning_hits_target_within_two_points() -> None:
    from training.keras_backend import import_keras
    from training.models import build_model, default_config
    from training.pruning import (
        PruningSchedule,
        measure_sparsity,
        pruning_callbacks,
        strip_pruning,
        wrap_for_pruning,
    )

    _, keras = import_keras()
    config = dataclasses.replace(default_config("lstm-fcn", "mcu"), conv_filters=(8, 8, 8))
    model = build_model(config, 16, 3, 2)
    pruned = wrap_for_pruning(model, PruningSchedule(0.6, begin_step=0, end_step=10, frequency=2))
    pruned.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 16, 3)).astype(np.float32)
    y = rng.integers(0, 2, 64)
    pruned.fit(X, y, batch_size=8, epochs=2, verbose=0, callbacks=pruning_callbacks())
    stripped = strip_pruning(pruned)
    assert abs(measure_sparsity(stripped) - 0.6) <= 0.02
    head_kernel = stripped.get_layer("head_0").get_weights()[0]
    assert np.count_nonzero(head_kernel == 0) == 0


def test_bilstm_pruning_reaches_both_directions_kernels_and_recurrent_kernels() -> None:
    """tfmot cannot wrap `Bidirectional`: the recurrent weights must be pruned all the same."""
    from training.keras_backend import import_keras
    from training.models import build_model, default_config
    from training.pruning import (
        PruningSchedule,
        measure_sparsity,
        pruned_weights,
        pruning_callbacks,
        strip_pruning,
        wrap_for_pruning,
    )

    # Prepare
    _, keras = import_keras()
    model = build_model(default_config("bilstm", "mcu"), 32, 2, 2)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 32, 2)).astype(np.float32)
    y = rng.integers(0, 2, 64)
    # Execute
    pruned = wrap_for_pruning(model, PruningSchedule(0.5, begin_step=0, end_step=10, frequency=2))
    pruned.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    pruned.fit(X, y, batch_size=8, epochs=2, verbose=0, callbacks=pruning_callbacks())
    stripped = strip_pruning(pruned)
    rebuilt = build_model(default_config("bilstm", "mcu"), 32, 2, 2)
    rebuilt.set_weights(stripped.get_weights())  # what loading the saved weights gives
    # Assert
    names = sorted(w.name for w in pruned_weights(rebuilt))
    assert sum("recurrent_kernel" in n for n in names) == 2  # forward and backward
    for weight in pruned_weights(rebuilt):
        if "recurrent_kernel" in weight.name or "lstm" in weight.name:
            assert abs(np.mean(weight.numpy() == 0) - 0.5) <= 0.02, weight.name
    assert abs(measure_sparsity(rebuilt) - 0.5) <= 0.02
