"""Helpers shared by the bridge tests: a tiny int8 model builder, a window dataset writer
and a fake runtime for protocol tests that do not need TFLM."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

WINDOW_SHAPE = (16, 3)


def build_tiny_int8_model(seed: int = 0, recurrent: bool = False) -> bytes:
    """A tiny Conv1D/Dense (or LSTM/Dense) classifier on [1, 16, 3], converted to full int8."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras as keras

    tf.random.set_seed(seed)
    if recurrent:
        features = [keras.layers.LSTM(4)]
    else:
        features = [
            keras.layers.Conv1D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling1D(),
        ]
    model = keras.Sequential(
        [
            keras.layers.Input(shape=WINDOW_SHAPE, batch_size=1),
            *features,
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(seed)

    def representative() -> Iterator[list[np.ndarray]]:
        for _ in range(32):
            yield [rng.normal(size=(1, *WINDOW_SHAPE)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def write_window_dataset(path: Path, windows: int = 6, seed: int = 0) -> Path:
    """A small window-dataset .npz of shape (windows, 16, 3)."""
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        X=rng.normal(size=(windows, *WINDOW_SHAPE)).astype(np.float32),
        y=np.arange(windows, dtype=np.int64) % 3,
        subject=np.zeros(windows, dtype=np.int64),
        labels=np.array(["rest", "walk", "run"]),
        channels=np.array(["x", "y", "z"]),
        sample_rate_hz=np.float64(200.0),
    )
    return path


class FakeRuntime:
    """A stand-in model for protocol tests that do not need TFLM: class = argmax of means."""

    input_shape = WINDOW_SHAPE
    input_dtype = np.dtype(np.int8)
    num_classes = 3

    def __init__(self, model_bytes: bytes, arena_bytes: int) -> None:
        self.model_bytes = model_bytes

    def quantise(self, window: np.ndarray) -> np.ndarray:
        return np.clip(np.round(window * 10), -128, 127).astype(np.int8)

    def run(self, window: np.ndarray) -> tuple[np.ndarray, int]:
        return window.astype(np.int32).sum(axis=0).clip(-128, 127).astype(np.int8), 5
