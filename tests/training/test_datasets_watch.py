"""The real smartwatch recordings shipped in the seglearn wheel."""

from __future__ import annotations

import numpy as np
import pytest

from training.datasets import watch
from training.datasets.errors import DatasetFormatError


@pytest.fixture(scope="module")
def watch_dataset():
    return watch.prepare()


def test_watch_has_ten_subjects_seven_exercises_six_channels(watch_dataset):
    ds = watch_dataset
    assert ds.X.shape[1:] == (128, 6)
    assert ds.sample_rate_hz == 50.0
    assert ds.subjects.tolist() == list(range(1, 11))
    assert ds.labels == ("PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW")
    assert ds.channels == ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
    assert np.all(ds.class_counts() > 300)


def test_watch_windows_overlap_by_half_within_a_recording(watch_dataset):
    ds = watch_dataset
    first = ds.recording == ds.recording[0]
    np.testing.assert_allclose(np.diff(ds.start_s[first]), 64 / 50.0)
    np.testing.assert_array_equal(ds.X[1, :64], ds.X[0, 64:])


def test_both_wrists_arrive_in_the_left_wrist_frame(watch_dataset):
    """With the arm hanging (pendulum), acc_x reads about -1 g on the left wrist, on every
    recording of every subject: the right-wrist half of the file has been mirrored."""
    ds = watch_dataset
    pendulum = ds.y == ds.labels.index("PEN")
    per_recording = [
        ds.X[pendulum & (ds.recording == r), :, 0].mean() for r in np.unique(ds.recording[pendulum])
    ]
    assert len(per_recording) == 20
    assert max(per_recording) < -0.5


def test_unknown_side_is_a_clear_error(tmp_path):
    bad = tmp_path / "watch_dataset.npy"
    content = {
        "X": [np.zeros((200, 6))],
        "y": [0],
        "subject": [1],
        "side": [2.0],
        "y_labels": ["PEN"],
    }
    np.save(bad, np.array(content, dtype=object), allow_pickle=True)
    with pytest.raises(DatasetFormatError, match=r"key 'side'\[0\] is 2.0, expected 0 or 1"):
        watch.prepare(str(bad))


def test_watch_file_not_imported_through_seglearn():
    import sys

    watch.prepare(subjects=1)
    assert "seglearn" not in sys.modules


def test_wrong_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "watch_dataset.npy"
    np.save(bad, np.array({"X": []}, dtype=object), allow_pickle=True)
    with pytest.raises(DatasetFormatError, match="missing key 'y'"):
        watch.prepare(str(bad))
