"""WESAD (Schmidt et al. 2018): wrist BVP to heart-rate windows, stress vs non-stress.

Layout: `WESAD/S2/S2.pkl`, ... Each pickle holds `signal.wrist.BVP` (64 Hz, [n, 1]), `label`
(700 Hz, the chest device's rate) and `subject`. Beats are found in the BVP with the same
detector the simulator and a device use (`hardware.sensors.ppg`); the heart-rate series is cut
into windows inside each labelled segment. Label 2 (stress) is `stress`; 1 (baseline) and
3 (amusement) are `non_stress`; other labels (transient, meditation, unused) are dropped.
"""

from __future__ import annotations

import itertools
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from training.datasets.errors import DatasetFormatError
from training.datasets.heart_rate_windows import (
    HR_RATE_HZ,
    heart_rate_channels_from_ppg,
    heart_rate_window_spec,
    stress_meta,
    trusted_windows,
)
from training.datasets.window_dataset import WindowDataset
from training.datasets.windowing import Recording, limit_subjects

BVP_RATE_HZ = 64.0
LABEL_RATE_HZ = 700.0
BINARY_LABEL = {1: 0, 3: 0, 2: 1}  # baseline, amusement -> non_stress; stress -> stress
_SUBJECT_FILE = re.compile(r"S(\d+)\.pkl$")


def subject_files(root: Path) -> list[tuple[int, Path]]:
    """(subject id, pickle) for every `S*/S*.pkl` under the WESAD folder, by id."""
    found = []
    for path in root.glob("S*/S*.pkl"):
        match = _SUBJECT_FILE.search(path.name)
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        raise DatasetFormatError(f"{root}: no S*/S*.pkl subject files (not a WESAD folder)")
    return sorted(found)


def read_subject_pickle(path: Path) -> dict[str, Any]:
    """The subject dict. WESAD ships as Python 2 pickles: load only files you trust."""
    try:
        with path.open("rb") as handle:
            content = pickle.load(handle, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, AttributeError) as exc:
        raise DatasetFormatError(f"{path}: not a readable WESAD pickle ({exc})") from exc
    return content if isinstance(content, dict) else {"": content}


def _lookup(content: dict[str, Any], dotted: str, path: Path) -> np.ndarray:
    node: Any = content
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            raise DatasetFormatError(f"{path}: missing key '{dotted}'")
        node = node[key]
    return np.asarray(node)


def subject_heart_rate(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """([hr, hr_diff] at 4 Hz, WESAD label for each of those samples) of one subject."""
    content = read_subject_pickle(path)
    bvp = _lookup(content, "signal.wrist.BVP", path).astype(np.float64).ravel()
    labels = _lookup(content, "label", path).astype(np.int64).ravel()
    duration_s = min(bvp.size / BVP_RATE_HZ, labels.size / LABEL_RATE_HZ)
    if duration_s < 10.0:
        raise DatasetFormatError(f"{path}: key 'signal.wrist.BVP' holds only {duration_s:.1f} s")
    try:
        channels = heart_rate_channels_from_ppg(bvp, BVP_RATE_HZ, duration_s)
    except ValueError as exc:
        raise DatasetFormatError(f"{path}: key 'signal.wrist.BVP': {exc}") from exc
    grid = np.arange(channels.shape[0]) / HR_RATE_HZ
    index = np.minimum((grid * LABEL_RATE_HZ).astype(np.int64), labels.size - 1)
    return channels, labels[index]


def _segments(subject_id: int, channels: np.ndarray, labels: np.ndarray) -> list[Recording]:
    """One recording per contiguous run of a kept label."""
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    bounds = np.concatenate([[0], change, [labels.size]])
    recordings: list[Recording] = []
    for lo, hi in itertools.pairwise(bounds):
        label = int(labels[lo])
        if label in BINARY_LABEL:
            recording_id = subject_id * 1000 + len(recordings)
            segment = channels[lo:hi]
            recordings.append(Recording(segment, BINARY_LABEL[label], subject_id, recording_id))
    return recordings


def prepare(
    path: str | None = None,
    seed: int = 0,
    subjects: int | None = None,
    window_s: float = 60.0,
    overlap: float = 0.75,
) -> WindowDataset:
    """Heart-rate windows (60 s at 4 Hz, channels hr and hr_diff); subject ids from `S<id>`."""
    del seed
    if not path:
        raise DatasetFormatError("wesad needs PATH: the WESAD folder holding S2/S2.pkl, ...")
    recordings = []
    for subject_id, pickle_path in subject_files(Path(path)):
        channels, labels = subject_heart_rate(pickle_path)
        recordings += _segments(subject_id, channels, labels)
    ds = trusted_windows(recordings, heart_rate_window_spec(window_s, overlap), stress_meta())
    return limit_subjects(ds, subjects)
