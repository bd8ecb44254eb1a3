"""WESAD loader on tiny subject pickles with the real key structure (BVP 64 Hz, labels 700 Hz)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from hardware.sensors.cardiac import HeartRhythm, beat_times
from hardware.sensors.ppg import PpgSensor, ppg_from_beats
from training.datasets import wesad
from training.datasets.errors import DatasetFormatError

SEGMENT_S = 75.0  # each of baseline, stress, amusement, with a transient (label 0) first


def _subject_dict(name: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    order = [(0, 20.0, 70), (1, SEGMENT_S, 68), (2, SEGMENT_S, 90), (3, SEGMENT_S, 72)]
    duration = sum(d for _, d, _ in order)
    bvp_parts, labels = [], []
    for label, seconds, hr in order:
        beats = beat_times(HeartRhythm(hr, 40.0, 14.0, 20.0), seconds, rng)
        bvp_parts.append(ppg_from_beats(beats, seconds, PpgSensor(artefacts_per_min=0), rng))
        labels.append(np.full(int(seconds * 700), label, dtype=np.int32))
    n32, n4 = int(duration * 32), int(duration * 4)
    return {
        "signal": {
            "chest": {
                "ACC": np.zeros((10, 3)),
                "ECG": np.zeros((10, 1)),
                "EMG": np.zeros((10, 1)),
                "EDA": np.zeros((10, 1)),
                "Temp": np.zeros((10, 1)),
                "Resp": np.zeros((10, 1)),
            },
            "wrist": {
                "ACC": np.zeros((n32, 3)),
                "BVP": np.concatenate(bvp_parts)[:, None] * 50.0,
                "EDA": np.zeros((n4, 1)),
                "TEMP": np.zeros((n4, 1)),
            },
        },
        "label": np.concatenate(labels),
        "subject": name,
    }


@pytest.fixture
def wesad_root(tmp_path):
    root = tmp_path / "WESAD"
    for subject_id in (2, 3):
        folder = root / f"S{subject_id}"
        folder.mkdir(parents=True)
        with (folder / f"S{subject_id}.pkl").open("wb") as handle:
            pickle.dump(_subject_dict(f"S{subject_id}", subject_id), handle, protocol=2)
        (folder / f"S{subject_id}_readme.txt").write_text("age 27\n")
    return root


def test_wesad_fixture_gives_binary_heart_rate_windows(wesad_root):
    ds = wesad.prepare(str(wesad_root))
    assert ds.channels == ("hr", "hr_diff") and ds.labels == ("non_stress", "stress")
    assert ds.X.shape[1:] == (240, 2) and ds.sample_rate_hz == 4.0
    assert ds.subjects.tolist() == [2, 3]
    # per subject: 75 s segments hold one 60 s window each (stride 15 s -> 2 windows)
    assert ds.class_counts().tolist() == [8, 4]
    stress_hr = ds.X[ds.y == 1, :, 0].mean()
    calm_hr = ds.X[ds.y == 0, :, 0].mean()
    assert 85 < stress_hr < 95 and 65 < calm_hr < 75


def test_missing_bvp_names_file_and_key(wesad_root):
    path = wesad_root / "S3" / "S3.pkl"
    content = pickle.loads(path.read_bytes())
    del content["signal"]["wrist"]["BVP"]
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(DatasetFormatError, match=r"S3\.pkl: missing key 'signal\.wrist\.BVP'"):
        wesad.prepare(str(wesad_root))


def test_truncated_pickle_is_one_line_error(wesad_root):
    path = wesad_root / "S2" / "S2.pkl"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetFormatError, match=r"S2\.pkl: not a readable WESAD pickle") as info:
        wesad.prepare(str(wesad_root))
    assert "\n" not in str(info.value)


def test_folder_without_subjects_is_clear(tmp_path):
    with pytest.raises(DatasetFormatError, match=r"no S\*/S\*\.pkl"):
        wesad.prepare(str(tmp_path))
