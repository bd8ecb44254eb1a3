"""Left/right wrist frames: the sign pattern, and that it is its own inverse."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.sensors.wrist_frame import MODEL_WRIST, mirror_signs, to_model_wrist

IMU = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")


def test_mirror_negates_accelerometer_x_and_gyroscope_y_z_only() -> None:
    assert mirror_signs(IMU).tolist() == [-1, 1, 1, 1, -1, -1]
    assert mirror_signs(("hr", "hr_diff")).tolist() == [1, 1]


def test_other_wrist_is_mirrored_and_mirroring_twice_is_identity() -> None:
    samples = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    other = "right" if MODEL_WRIST == "left" else "left"
    assert to_model_wrist(samples, IMU, MODEL_WRIST) is samples
    mirrored = to_model_wrist(samples, IMU, other)
    assert np.array_equal(mirrored[:, [1, 2, 3]], samples[:, [1, 2, 3]])
    assert np.array_equal(to_model_wrist(mirrored, IMU, other), samples)


def test_unknown_wrist_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown wrist 'ankle'"):
        to_model_wrist(np.zeros((1, 6)), IMU, "ankle")
