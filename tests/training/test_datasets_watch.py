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


def test_watch_file_not_imported_through_seglearn():
    import sys

    watch.prepare(subjects=1)
    assert "seglearn" not in sys.modules


def test_wrong_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "watch_dataset.npy"
    np.save(bad, np.array({"X": []}, dtype=object), allow_pickle=True)
    with pytest.raises(DatasetFormatError, match="missing key 'y'"):
        watch.prepare(str(bad))
