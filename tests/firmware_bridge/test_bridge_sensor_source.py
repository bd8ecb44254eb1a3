"""Sample sources: replayed windows, the hardware IMU and PPG emulators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.errors import BridgeError
from firmware_bridge.sensor_source import (
    ImuActivitySource,
    PpgStressSource,
    ReplaySource,
    load_window_dataset,
)


def test_replay_crosses_windows_and_loops(replay_path: Path) -> None:
    dataset = load_window_dataset(replay_path)
    source = ReplaySource(dataset)
    total = dataset.X.shape[0] * dataset.X.shape[1]
    samples = source.read(total + 5)
    np.testing.assert_array_equal(samples[:total], dataset.X.reshape(total, -1))
    np.testing.assert_array_equal(samples[total:], dataset.X[0][:5])
    assert source.current_label() == int(dataset.y[0])


def test_bad_dataset_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, X=np.zeros((1, 2, 3), np.float32))
    with pytest.raises(BridgeError, match="cannot read window dataset"):
        load_window_dataset(path)


def test_imu_source_changes_activity_at_segment_boundary() -> None:
    source = ImuActivitySource(sample_rate_hz=50.0, segment_s=1.0, seed=1)
    assert source.window_started() and source.current_label() == 0
    assert source.samples_to_boundary() == 50
    samples = source.read(50)
    assert samples.shape == (50, 6) and samples.dtype == np.float32
    assert source.current_label() == 1 and source.window_started()


def test_ppg_source_alternates_calm_and_stress() -> None:
    source = PpgStressSource(segment_s=5.0, seed=2)
    assert source.window_started() and source.current_label() == 0
    samples = source.read(source.samples_to_boundary())
    assert samples.shape == (320, 1) and np.isfinite(samples).all()
    assert source.window_started() and source.current_label() == 1


def test_bundle_manifest_is_read_tolerantly(tmp_path: Path) -> None:
    import json

    from firmware_bridge.emulator_model import load_emulator_model

    (tmp_path / "model.int8.tflite").write_bytes(b"TFL3")
    manifest = {"labels": ["a", "b"], "normalisation": {"mean": [1.0], "std": [2.0]}}
    manifest["models"] = {"model": {"file": "model.int8.tflite"}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    np.savez(tmp_path / "head.npz", kernel_0=np.ones((2, 3)), bias_0=np.zeros(3),
             kernel_1=np.ones((3, 2)), bias_1=np.zeros(2))  # fmt: skip
    model = load_emulator_model(tmp_path)
    assert model.model_bytes == b"TFL3" and model.labels == ("a", "b")
    assert model.normalisation is not None
    np.testing.assert_allclose(model.normalisation.apply(np.array([[3.0]], np.float32)), [[1.0]])
    assert [t.shape for t in model.head] == [(2, 3), (3,), (3, 2), (2,)]
    with pytest.raises(BridgeError, match="cannot read"):
        load_emulator_model(tmp_path / "missing")
