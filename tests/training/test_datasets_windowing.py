"""Sliding windows per recording and per-channel normalisation on training subjects only."""

from __future__ import annotations

import numpy as np
import pytest

from training.datasets.normalisation import Normalisation, fit_normalisation
from training.datasets.window_dataset import WindowDataset
from training.datasets.windowing import (
    DatasetMeta,
    Recording,
    WindowSpec,
    sliding_windows,
    window_starts,
    windows_from_recordings,
)


def test_half_overlap_starts_every_half_window():
    assert window_starts(10, WindowSpec(4, 0.5)).tolist() == [0, 2, 4, 6]
    assert window_starts(3, WindowSpec(4, 0.5)).tolist() == []


def test_sliding_windows_hold_consecutive_samples():
    signal = np.arange(12).reshape(6, 2)  # (samples, channels)
    windows = sliding_windows(signal, WindowSpec(3, 0.0))
    assert windows.shape == (2, 3, 2)
    np.testing.assert_array_equal(windows[1], signal[3:6])


def test_windows_never_straddle_recordings_and_keep_start_time():
    # Prepare
    recordings = [
        Recording(np.zeros((8, 1)), label=0, subject=1, recording_id=5),
        Recording(np.ones((5, 1)), label=1, subject=2, recording_id=6),
    ]
    meta = DatasetMeta(labels=("a", "b"), channels=("v",), sample_rate_hz=2.0)
    # Execute
    ds = windows_from_recordings(recordings, WindowSpec(4, 0.5), meta)
    # Assert
    assert ds.y.tolist() == [0, 0, 0, 1]
    assert ds.subject.tolist() == [1, 1, 1, 2]
    assert ds.recording.tolist() == [5, 5, 5, 6]
    assert ds.start_s.tolist() == [0.0, 1.0, 2.0, 0.0]
    assert np.all(ds.X[ds.y == 1] == 1.0)


def test_bad_window_spec_is_rejected():
    with pytest.raises(ValueError, match="overlap"):
        WindowSpec(4, 1.0)


def test_normalisation_uses_training_subjects_only():
    # Prepare
    X = np.zeros((3, 2, 1))
    X[0], X[1], X[2] = 1.0, 3.0, 100.0  # subject 3 is a test subject far away
    ds = WindowDataset(X, [0, 0, 0], [1, 2, 3], ["a"], ["v"], 1.0)
    # Execute
    norm = fit_normalisation(ds, [1, 2])
    # Assert
    assert norm.mean.tolist() == [2.0] and norm.std.tolist() == [1.0]
    np.testing.assert_allclose(norm.apply(ds.X[:2]).ravel(), [-1, -1, 1, 1])
    again = Normalisation.from_dict(norm.to_dict())
    np.testing.assert_array_equal(again.mean, norm.mean)


def test_constant_channel_passes_through():
    ds = WindowDataset(np.ones((2, 3, 1)), [0, 0], [1, 1], ["a"], ["v"], 1.0)
    assert fit_normalisation(ds, [1]).std.tolist() == [1.0]
