"""Calibration windows: a deterministic subset of training windows, spikes clipped (no TF)."""

from __future__ import annotations

import numpy as np

from convert.quantize import CALIBRATION_CLIP_SD, calibration_windows


def test_a_spike_does_not_reach_the_calibration_range() -> None:
    windows = np.random.default_rng(0).normal(size=(50, 240, 2)).astype(np.float32)
    windows[7, 100, 1] = 20.0  # a heart-rate step at a detector glitch
    chosen = calibration_windows(windows, max_windows=100)
    assert float(np.abs(chosen).max()) == CALIBRATION_CLIP_SD
    ordinary = np.abs(windows) < CALIBRATION_CLIP_SD
    np.testing.assert_array_equal(chosen[ordinary], windows[ordinary])


def test_the_subset_is_deterministic_and_sized() -> None:
    windows = np.random.default_rng(1).normal(size=(500, 16, 3)).astype(np.float32)
    first, again = (
        calibration_windows(windows, 30, seed=4),
        calibration_windows(windows, 30, seed=4),
    )
    assert first.shape == (30, 16, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, calibration_windows(windows, 30, seed=5))
