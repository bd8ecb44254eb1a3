"""The window-dataset file: round trip, validation, and one-line errors on bad files."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from training.datasets.errors import DatasetFileError
from training.datasets.window_dataset import (
    WindowDataset,
    load_window_dataset,
    save_window_dataset,
)


def _tiny(recording: bool = True) -> WindowDataset:
    return WindowDataset(
        X=np.arange(4 * 3 * 2, dtype=np.float64).reshape(4, 3, 2),
        y=[0, 1, 1, 0],
        subject=[1, 1, 2, 3],
        labels=["rest", "stress"],
        channels=["hr", "hr_diff"],
        sample_rate_hz=4,
        recording=[10, 10, 20, 30] if recording else None,
        start_s=[0.0, 0.5, 0.0, 0.0] if recording else None,
    )


def test_round_trip_keeps_every_array(tmp_path):
    # Prepare
    ds = _tiny()
    # Execute
    loaded = load_window_dataset(save_window_dataset(ds, tmp_path / "d.npz"))
    # Assert
    assert loaded.X.dtype == np.float32 and loaded.X.shape == (4, 3, 2)
    np.testing.assert_array_equal(loaded.X, ds.X)
    np.testing.assert_array_equal(loaded.subject, [1, 1, 2, 3])
    assert loaded.labels == ("rest", "stress") and loaded.channels == ("hr", "hr_diff")
    assert loaded.sample_rate_hz == 4.0
    np.testing.assert_array_equal(loaded.recording, [10, 10, 20, 30])
    np.testing.assert_allclose(loaded.start_s, [0.0, 0.5, 0.0, 0.0])


def test_file_reads_without_pickle_as_edge_code_does(tmp_path):
    path = save_window_dataset(_tiny(recording=False), tmp_path / "d.npz")
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"X", "y", "subject", "labels", "channels", "sample_rate_hz"}
        assert npz["y"].dtype == np.int64 and npz["labels"].tolist() == ["rest", "stress"]
        assert float(npz["sample_rate_hz"]) == 4.0


def test_select_and_for_subjects_keep_optional_arrays():
    ds = _tiny()
    picked = ds.for_subjects([1, 3])
    assert picked.num_windows == 3
    np.testing.assert_array_equal(picked.recording, [10, 10, 30])
    assert ds.select(np.array([False, False, True, False])).subject.tolist() == [2]
    assert ds.class_counts().tolist() == [2, 2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"y": [0, 1, 2, 0]}, "y must lie in"),
        ({"channels": ["hr"]}, "channel names"),
        ({"subject": [1, 2]}, "subject has shape"),
        ({"labels": ["a", "a"]}, "unique"),
        ({"X": np.full((4, 3, 2), np.nan)}, "NaN"),
        ({"sample_rate_hz": 0}, "positive"),
    ],
)
def test_invalid_dataset_is_rejected(change, message):
    fields = {
        "X": np.zeros((4, 3, 2)),
        "y": [0, 1, 1, 0],
        "subject": [1, 1, 2, 3],
        "labels": ["rest", "stress"],
        "channels": ["hr", "hr_diff"],
        "sample_rate_hz": 4,
    }
    fields.update(change)
    with pytest.raises(ValueError, match=message):
        WindowDataset(**fields)


def test_truncated_file_is_one_line_error_naming_it(tmp_path):
    path = save_window_dataset(_tiny(), tmp_path / "d.npz")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetFileError, match=r"d\.npz: not a readable") as info:
        load_window_dataset(path)
    assert "\n" not in str(info.value)


def test_missing_array_names_it(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, X=np.zeros((1, 2, 1)))
    with pytest.raises(DatasetFileError, match="missing y, subject"):
        load_window_dataset(path)


def test_inconsistent_file_is_reported(tmp_path):
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w"):
        pass
    with pytest.raises(DatasetFileError, match=r"bad\.npz"):
        load_window_dataset(path)
    with pytest.raises(DatasetFileError, match="no such"):
        load_window_dataset(tmp_path / "absent.npz")
