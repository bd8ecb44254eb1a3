"""WISDM v1.1 raw accelerometer text (Kwapisz et al. 2011): `user,activity,timestamp,x,y,z;`.

20 Hz phone accelerometer in m/s^2 (converted here to g). The real file has quirks: records end
with `;`, some lines are empty, a few carry a trailing comma. Those are tolerated; anything
else is an error naming the file and line, unless `skip_malformed` is set.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.datasets.errors import DatasetFormatError
from training.datasets.window_dataset import WindowDataset
from training.datasets.windowing import (
    DatasetMeta,
    Recording,
    WindowSpec,
    limit_subjects,
    windows_from_recordings,
)

FILE_NAME = "WISDM_ar_v1.1_raw.txt"
SAMPLE_RATE_HZ = 20.0
WINDOW = WindowSpec(length=80, overlap=0.5)  # 4 s
LABELS = ("walking", "jogging", "upstairs", "downstairs", "sitting", "standing")
CHANNELS = ("acc_x", "acc_y", "acc_z")
STANDARD_GRAVITY = 9.80665
_EXPECTED = "expected 'user,activity,timestamp,x,y,z;'"


@dataclass(frozen=True)
class WisdmRecord:
    user: int
    label: int
    acceleration: tuple[float, float, float]


def parse_record(text: str) -> WisdmRecord:
    """One `user,activity,timestamp,x,y,z` record (raises ValueError with the reason)."""
    fields = [field.strip() for field in text.split(",")]
    if len(fields) == 7 and fields[-1] == "":
        fields = fields[:-1]  # a trailing comma seen in the real file
    if len(fields) != 6:
        raise ValueError(f"{_EXPECTED}, found {len(fields)} fields")
    activity = fields[1].lower()
    if activity not in LABELS:
        raise ValueError(f"unknown activity {fields[1]!r}")
    x, y, z = (float(value) for value in fields[3:6])
    return WisdmRecord(int(fields[0]), LABELS.index(activity), (x, y, z))


def read_wisdm_records(path: Path, skip_malformed: bool = False) -> list[WisdmRecord]:
    """Every record of the file, in order."""
    records = []
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line_number, line in enumerate(handle, start=1):
            for text in line.strip().split(";"):
                if not text.strip():
                    continue
                try:
                    records.append(parse_record(text))
                except ValueError as exc:
                    if skip_malformed:
                        continue
                    raise DatasetFormatError(
                        f"{path}:{line_number}: {exc} in {text.strip()[:50]!r}"
                        " (use --skip-malformed to drop such lines)"
                    ) from None
    if not records:
        raise DatasetFormatError(f"{path}: no records")
    return records


def _recordings(records: list[WisdmRecord]) -> list[Recording]:
    """Contiguous runs of one user doing one activity."""
    keys = np.array([(r.user, r.label) for r in records], dtype=np.int64)
    values = np.array([r.acceleration for r in records], dtype=np.float64) / STANDARD_GRAVITY
    change = np.flatnonzero(np.any(keys[1:] != keys[:-1], axis=1)) + 1
    bounds = np.concatenate([[0], change, [len(records)]])
    return [
        Recording(values[lo:hi], int(keys[lo, 1]), int(keys[lo, 0]), recording_id=index)
        for index, (lo, hi) in enumerate(itertools.pairwise(bounds))
    ]


def prepare(
    path: str | None = None,
    seed: int = 0,
    subjects: int | None = None,
    skip_malformed: bool = False,
) -> WindowDataset:
    """Windows of 80 samples (4 s at 20 Hz, 50% overlap) per run; subject = WISDM user id."""
    del seed
    if not path:
        raise DatasetFormatError(f"wisdm needs PATH: {FILE_NAME} or the folder holding it")
    source = Path(path)
    if source.is_dir():
        source = source / FILE_NAME
    if not source.is_file():
        raise DatasetFormatError(f"{source}: file not found")
    meta = DatasetMeta(labels=LABELS, channels=CHANNELS, sample_rate_hz=SAMPLE_RATE_HZ)
    ds = windows_from_recordings(
        _recordings(read_wisdm_records(source, skip_malformed)), WINDOW, meta
    )
    return limit_subjects(ds, subjects)
