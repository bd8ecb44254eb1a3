"""Session fixtures: a tiny LSTM-FCN trained on separable synthetic windows, then converted.

One real conversion (TensorFlow, LiteRT, tflite-micro) is shared by every test in this
package; tests that need it are marked `tf`.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest

WINDOW_LENGTH = 32
NUM_CHANNELS = 3
NUM_CLASSES = 3
SAMPLE_RATE_HZ = 32.0
STRIDE = 16


def synthetic_dataset(seed: int = 0):  # type: ignore[no-untyped-def]
    """6 subjects x 36 windows; class k raises channel k and oscillates at its own rate."""
    from training.datasets.window_dataset import WindowDataset

    rng = np.random.default_rng(seed)
    per_subject = 36
    subjects = np.repeat(np.arange(1, 7), per_subject)
    labels = np.tile(np.arange(NUM_CLASSES), len(subjects) // NUM_CLASSES)
    t = np.arange(WINDOW_LENGTH) / SAMPLE_RATE_HZ
    X = rng.normal(scale=0.5, size=(len(subjects), WINDOW_LENGTH, NUM_CHANNELS))
    for index, label in enumerate(labels):
        X[index, :, label] += 2.0 + np.sin(2 * np.pi * (label + 1) * t)
    start_s = np.tile(np.arange(per_subject) * STRIDE / SAMPLE_RATE_HZ, 6)
    return WindowDataset(
        X=X.astype(np.float32),
        y=labels,
        subject=subjects,
        labels=("rest", "walk", "run"),
        channels=("ax", "ay", "az"),
        sample_rate_hz=SAMPLE_RATE_HZ,
        recording=subjects,
        start_s=start_s,
    )


def train_tiny_run(run_dir: Path, data_path: Path) -> None:
    """Fit the tiny model a few epochs and save it as `iomt train` would."""
    from training.datasets.window_dataset import save_window_dataset
    from training.keras_backend import import_keras
    from training.models import build_model, default_config
    from training.run_artifacts import save_run
    from training.splits import SubjectSplit

    tf, keras = import_keras()
    tf.random.set_seed(0)
    dataset = synthetic_dataset()
    save_window_dataset(dataset, data_path)
    split = SubjectSplit(train_subjects=(1, 2, 3, 4), val_subjects=(5,), test_subjects=(6,))
    train = dataset.for_subjects(split.train_subjects)
    mean, std = train.X.mean(axis=(0, 1)), train.X.std(axis=(0, 1))
    config = dataclasses.replace(default_config("lstm-fcn", "mcu"), conv_filters=(8, 8, 8))
    model = build_model(config, WINDOW_LENGTH, NUM_CHANNELS, NUM_CLASSES)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit((train.X - mean) / std, train.y, epochs=4, batch_size=16, verbose=0)
    run_config = {
        "arch": "lstm-fcn",
        "size": "mcu",
        "model": config.to_dict(),
        "window_length": WINDOW_LENGTH,
        "num_channels": NUM_CHANNELS,
        "num_classes": NUM_CLASSES,
        "sparsity": 0.0,
    }
    dataset_info = {
        "labels": list(dataset.labels),
        "channels": list(dataset.channels),
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "data_path": str(data_path),
        "data_sha256": "0" * 64,
    }
    save_run(run_dir, model, run_config, mean, std, dataset_info, split)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny_run")
    train_tiny_run(root / "runs" / "tiny", root / "data.npz")
    return root / "runs" / "tiny"


@pytest.fixture(scope="session")
def signing_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bundle_format.signing import write_key_pair

    directory = tmp_path_factory.mktemp("keys")
    write_key_pair(directory)
    return directory


@pytest.fixture(scope="session")
def converted_bundle(
    tiny_run: Path, signing_key_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """`iomt convert` run in-process for nano33ble; returns (bundle dir, stdout)."""
    from iomt.cli import main
    from iomt.environment import Environment

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    stdout, stderr = io.StringIO(), io.StringIO()
    env = Environment(
        stdout=stdout, stderr=stderr, config_dir=signing_key_dir / "config", interactive=False
    )
    argv = [
        "convert",
        str(tiny_run),
        "--out",
        str(out),
        "--board",
        "nano33ble",
        "--key",
        str(signing_key_dir / "bundle_signing.key"),
        "--min-agreement",
        "0.9",
    ]
    status = main(argv, env)
    assert status == 0, stderr.getvalue()
    return out, stdout.getvalue()
