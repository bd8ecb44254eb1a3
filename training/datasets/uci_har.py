"""UCI HAR Dataset (Anguita et al. 2013): the raw `Inertial Signals`, already windowed.

Layout: `UCI HAR Dataset/{train,test}/Inertial Signals/{total_acc,body_gyro}_{x,y,z}_{split}.txt`
(128 samples per row at 50 Hz, 50% overlap), `{split}/y_{split}.txt`,
`{split}/subject_{split}.txt` and `activity_labels.txt`. We keep total acceleration (g) and
body gyroscope (rad/s), the same six channels as `watch` and `simulated-har`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.datasets.errors import DatasetFormatError
from training.datasets.text_tables import read_number_table
from training.datasets.window_dataset import WindowDataset
from training.datasets.windowing import limit_subjects

SAMPLE_RATE_HZ = 50.0
WINDOW_LENGTH = 128
SPLITS = ("train", "test")
SIGNALS = ("total_acc_x", "total_acc_y", "total_acc_z", "body_gyro_x", "body_gyro_y", "body_gyro_z")
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")


def dataset_root(path: Path) -> Path:
    """Accept the `UCI HAR Dataset` folder itself or the folder it was unzipped into."""
    nested = path / "UCI HAR Dataset"
    root = nested if nested.is_dir() else path
    if not (root / "activity_labels.txt").is_file():
        raise DatasetFormatError(f"{root}: no activity_labels.txt (not a UCI HAR Dataset folder)")
    return root


def read_activity_labels(path: Path) -> tuple[str, ...]:
    """`1 WALKING` lines -> ('walking', ...) ordered by their number."""
    entries = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit():
            raise DatasetFormatError(
                f"{path}:{line_number}: expected 'NUMBER NAME', found {line!r}"
            )
        entries.append((int(fields[0]), fields[1].lower()))
    numbers = sorted(number for number, _ in entries)
    if numbers != list(range(1, len(entries) + 1)):
        raise DatasetFormatError(f"{path}: activity numbers must be 1..{len(entries)}")
    return tuple(name for _, name in sorted(entries))


def _read_column(path: Path) -> np.ndarray:
    return read_number_table(path, columns=1)[:, 0].astype(np.int64)


def _check_rows(paths_and_rows: list[tuple[Path, int]]) -> None:
    first_path, first_rows = paths_and_rows[0]
    for path, rows in paths_and_rows[1:]:
        if rows != first_rows:
            raise DatasetFormatError(f"{path}: {rows} rows, but {first_path} has {first_rows}")


def read_split(
    root: Path, split: str, num_labels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X [N, 128, 6], y 0-based [N], subject [N]) of one split."""
    signal_dir = root / split / "Inertial Signals"
    signal_paths = [signal_dir / f"{name}_{split}.txt" for name in SIGNALS]
    signals = [read_number_table(path, columns=WINDOW_LENGTH) for path in signal_paths]
    y_path, subject_path = root / split / f"y_{split}.txt", root / split / f"subject_{split}.txt"
    y, subject = _read_column(y_path), _read_column(subject_path)
    _check_rows(
        [(p, s.shape[0]) for p, s in zip(signal_paths, signals, strict=True)]
        + [(y_path, y.size), (subject_path, subject.size)]
    )
    bad = np.flatnonzero((y < 1) | (y > num_labels))
    if bad.size:
        raise DatasetFormatError(f"{y_path}:{bad[0] + 1}: label {y[bad[0]]} not in 1..{num_labels}")
    return np.stack(signals, axis=2), y - 1, subject


def prepare(path: str | None = None, seed: int = 0, subjects: int | None = None) -> WindowDataset:
    """Both splits merged (we split by subject ourselves); subject ids 1..30 as in the files."""
    del seed
    if not path:
        raise DatasetFormatError("uci-har needs PATH: the unzipped 'UCI HAR Dataset' folder")
    root = dataset_root(Path(path))
    labels = read_activity_labels(root / "activity_labels.txt")
    parts = [read_split(root, split, len(labels)) for split in SPLITS if (root / split).is_dir()]
    if not parts:
        raise DatasetFormatError(f"{root}: neither train/ nor test/ found")
    ds = WindowDataset(
        X=np.concatenate([part[0] for part in parts]),
        y=np.concatenate([part[1] for part in parts]),
        subject=np.concatenate([part[2] for part in parts]),
        labels=labels,
        channels=CHANNELS,
        sample_rate_hz=SAMPLE_RATE_HZ,
    )
    return limit_subjects(ds, subjects)
