"""Model and data of the watch task, shared by the ServerApp and the ClientApp.

The model is the toolkit's own LSTM-FCN (`training.models.build_model`, through the pretrained
run's config and weights), trained whole in float32 with TensorFlow: what a Flower user does.
Devices read the same replay files (their subject's earlier windows) that `iomt simulate` gave
its `iomt edge` processes; the server scores the test subjects' windows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def load_model(run_dir: str, learning_rate: float) -> Any:
    """The pretrained LSTM-FCN (float32, any batch size), compiled for training."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras

    from training.run_artifacts import load_run

    model = load_run(run_dir).build_model(batch_size=None)
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def device_files(data_dir: str) -> list[Path]:
    """One replay file per device, in a fixed order (partition-id indexes it)."""
    return sorted((Path(data_dir) / "replay").glob("*.npz"))


def load_windows(run_dir: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Normalised windows [N, T, C] and labels [N] of one window-dataset file."""
    from training.run_artifacts import load_run

    with np.load(path, allow_pickle=False) as data:
        return load_run(run_dir).normalise(data["X"]), data["y"].astype(np.int64)


def load_device(run_dir: str, data_dir: str, partition_id: int) -> tuple[np.ndarray, np.ndarray]:
    return load_windows(run_dir, device_files(data_dir)[partition_id])


def load_test(run_dir: str, data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    return load_windows(run_dir, Path(data_dir) / "holdout.npz")
