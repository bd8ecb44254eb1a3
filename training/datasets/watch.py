"""Real smartwatch shoulder-physiotherapy recordings shipped inside the `seglearn` wheel.

10 subjects, 7 exercises, 6-axis IMU at 50 Hz (Burns et al. 2018). We read the data file from
the installed distribution without importing seglearn.

Every subject did every exercise with the watch on each wrist (the file's `side`: 1 is the left
wrist, where the arm hanging in the pendulum exercise reads -1 g on acc_x; 0 is the right).
Right-wrist recordings are mirrored into the left-wrist frame the models train in
(`hardware.sensors.wrist_frame`), as a watch does from its wrist setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hardware.sensors.wrist_frame import to_model_wrist
from training.datasets.errors import DatasetFormatError
from training.datasets.window_dataset import WindowDataset
from training.datasets.windowing import (
    DatasetMeta,
    Recording,
    WindowSpec,
    limit_subjects,
    windows_from_recordings,
)

SAMPLE_RATE_HZ = 50.0
WINDOW = WindowSpec(length=128, overlap=0.5)  # 2.56 s
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
_FILE_IN_WHEEL = "seglearn/data/watch_dataset.npy"
_KEYS = ("X", "y", "subject", "y_labels", "side")
_WRIST_OF_SIDE = {0: "right", 1: "left"}


def watch_file_path() -> Path:
    """Where the installed seglearn wheel keeps the recordings."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path = Path(str(distribution("seglearn").locate_file(_FILE_IN_WHEEL)))
    except PackageNotFoundError as exc:
        raise DatasetFormatError(
            "the watch recordings come with the 'seglearn' package: pip install seglearn"
        ) from exc
    if not path.is_file():
        raise DatasetFormatError(f"{path}: not found in the installed seglearn distribution")
    return path


def read_watch_file(path: Path) -> dict[str, Any]:
    """The pickled dict in the .npy: X (list of [n, 6]), y, subject, side, y_labels, X_labels."""
    try:
        # allow_pickle only because this file ships inside an installed package we trust;
        # never use it for a file a user hands us.
        content = np.load(path, allow_pickle=True).item()
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetFormatError(f"{path}: unreadable watch dataset ({exc})") from exc
    if not isinstance(content, dict):
        raise DatasetFormatError(f"{path}: expected a dict, found {type(content).__name__}")
    missing = [key for key in _KEYS if key not in content]
    if missing:
        raise DatasetFormatError(f"{path}: missing key {missing[0]!r}")
    return content


def _recordings(content: dict[str, Any], path: Path) -> list[Recording]:
    recordings = []
    for index, (signal, label, subject, side) in enumerate(
        zip(content["X"], content["y"], content["subject"], content["side"], strict=True)
    ):
        signal = np.asarray(signal, dtype=np.float64)
        if signal.ndim != 2 or signal.shape[1] != len(CHANNELS):
            raise DatasetFormatError(
                f"{path}: key 'X'[{index}] has shape {signal.shape}, expected [n, 6]"
            )
        wrist = _WRIST_OF_SIDE.get(int(side))
        if wrist is None:
            raise DatasetFormatError(f"{path}: key 'side'[{index}] is {side!r}, expected 0 or 1")
        signal = to_model_wrist(signal, CHANNELS, wrist)
        recordings.append(Recording(signal, int(label), int(subject), recording_id=index))
    return recordings


def prepare(path: str | None = None, seed: int = 0, subjects: int | None = None) -> WindowDataset:
    """Windows of 128 samples (50% overlap) per recording; subject ids 1..10 as in the file."""
    del seed  # real data: nothing random
    source = Path(path) if path else watch_file_path()
    content = read_watch_file(source)
    meta = DatasetMeta(
        labels=tuple(str(label) for label in content["y_labels"]),
        channels=CHANNELS,
        sample_rate_hz=SAMPLE_RATE_HZ,
    )
    ds = windows_from_recordings(_recordings(content, source), WINDOW, meta)
    return limit_subjects(ds, subjects)
