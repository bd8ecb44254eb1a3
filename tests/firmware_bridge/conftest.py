"""Fixtures of the bridge tests: a tiny int8 model (TensorFlow, session scoped), a replay
dataset, and an emulated MCU served over an in-memory link or a real pty."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.emulated_mcu import EmulatedMcu
from firmware_bridge.emulator_model import EmulatorModel
from firmware_bridge.emulator_service import EmulatorService
from firmware_bridge.host_driver import HostDriver
from firmware_bridge.protocol.reliability import RetryPolicy
from firmware_bridge.sensor_source import ReplaySource, load_window_dataset
from firmware_bridge.transport import memory_link
from hardware.board_profiles import get_board

WINDOW_SHAPE = (16, 3)


def build_tiny_int8_model(seed: int = 0) -> bytes:
    """A tiny Conv1D/Dense classifier on [1, 16, 3], converted to full int8."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras as keras

    tf.random.set_seed(seed)
    model = keras.Sequential(
        [
            keras.layers.Input(shape=WINDOW_SHAPE, batch_size=1),
            keras.layers.Conv1D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling1D(),
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


@pytest.fixture(scope="session")
def tiny_model() -> bytes:
    """Bytes of the tiny int8 model (built once per session with tf_keras)."""
    return build_tiny_int8_model()


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


@pytest.fixture
def replay_path(tmp_path: Path) -> Path:
    """Path of a small window dataset."""
    return write_window_dataset(tmp_path / "windows.npz")


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


@pytest.fixture
def mcu(replay_path: Path) -> EmulatedMcu:
    """An emulated nano33ble with the fake model and the replay dataset."""
    sensors = ReplaySource(load_window_dataset(replay_path))
    model = EmulatorModel(model_bytes=b"fake-model")
    return EmulatedMcu(get_board("nano33ble"), model, sensors, model_loader=FakeRuntime)


@pytest.fixture
def memory_driver(mcu: EmulatedMcu) -> Iterator[HostDriver]:
    """A host driver connected to the emulated MCU over an in-memory link."""
    host_end, device_end = memory_link()
    service = EmulatorService(mcu, device_end).start()
    driver = HostDriver(host_end, RetryPolicy(timeout_s=0.2, max_attempts=10))
    driver.connect()
    yield driver
    driver.close()
    service.close()
