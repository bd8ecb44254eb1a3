"""The window dataset: the one format every loader writes and every trainer reads.

`X` float32 [N, T, C], `y` int64 [N], `subject` int64 [N], `labels` str [K], `channels` str [C],
`sample_rate_hz` float; optional `recording` int64 [N] and `start_s` float64 [N].
On disk it is a `.npz` readable with `np.load(path, allow_pickle=False)` (see docs/data.md).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.datasets.errors import DatasetFileError

REQUIRED_ARRAYS = ("X", "y", "subject", "labels", "channels", "sample_rate_hz")
OPTIONAL_ARRAYS = ("recording", "start_s")


@dataclass(frozen=True, eq=False)
class WindowDataset:
    """Fixed-length labelled windows, each tagged with the subject (one subject = one device)."""

    X: np.ndarray  # (windows, time, channels) float32
    y: np.ndarray  # (windows,) int64 class index into `labels`
    subject: np.ndarray  # (windows,) int64
    labels: tuple[str, ...]
    channels: tuple[str, ...]
    sample_rate_hz: float
    recording: np.ndarray | None = None  # (windows,) int64
    start_s: np.ndarray | None = None  # (windows,) float64, start within its recording

    def __post_init__(self) -> None:
        _set = object.__setattr__
        _set(self, "X", np.asarray(self.X, dtype=np.float32))
        _set(self, "y", np.asarray(self.y, dtype=np.int64))
        _set(self, "subject", np.asarray(self.subject, dtype=np.int64))
        _set(self, "labels", tuple(str(label) for label in self.labels))
        _set(self, "channels", tuple(str(channel) for channel in self.channels))
        _set(self, "sample_rate_hz", float(self.sample_rate_hz))
        if self.recording is not None:
            _set(self, "recording", np.asarray(self.recording, dtype=np.int64))
        if self.start_s is not None:
            _set(self, "start_s", np.asarray(self.start_s, dtype=np.float64))
        _validate(self)

    @property
    def num_windows(self) -> int:
        return int(self.X.shape[0])

    @property
    def window_length(self) -> int:
        return int(self.X.shape[1])

    @property
    def num_channels(self) -> int:
        return int(self.X.shape[2])

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def subjects(self) -> np.ndarray:
        """Sorted unique subject ids."""
        return np.unique(self.subject)

    def select(self, mask: np.ndarray | Sequence[int]) -> WindowDataset:
        """A new dataset with the windows picked by a boolean mask or an index array."""
        index = np.asarray(mask)
        if index.dtype == bool and index.shape != (self.num_windows,):
            raise ValueError(f"mask has shape {index.shape}, expected ({self.num_windows},)")
        return WindowDataset(
            X=self.X[index],
            y=self.y[index],
            subject=self.subject[index],
            labels=self.labels,
            channels=self.channels,
            sample_rate_hz=self.sample_rate_hz,
            recording=None if self.recording is None else self.recording[index],
            start_s=None if self.start_s is None else self.start_s[index],
        )

    def for_subjects(self, subjects: Iterable[int]) -> WindowDataset:
        """The windows of the given subjects only (subject-wise splits, device partitions)."""
        return self.select(np.isin(self.subject, np.asarray(list(subjects), dtype=np.int64)))

    def class_counts(self) -> np.ndarray:
        """Windows per class, length K."""
        return np.bincount(self.y, minlength=self.num_classes)


def _validate(ds: WindowDataset) -> None:
    if ds.X.ndim != 3:
        raise ValueError(f"X must be [windows, time, channels], got shape {ds.X.shape}")
    n, _, c = ds.X.shape
    for name in ("y", "subject", "recording", "start_s"):
        array = getattr(ds, name)
        if array is not None and array.shape != (n,):
            raise ValueError(f"{name} has shape {array.shape}, expected ({n},)")
    if len(ds.channels) != c:
        raise ValueError(f"{len(ds.channels)} channel names for {c} channels in X")
    if not ds.labels or len(set(ds.labels)) != len(ds.labels):
        raise ValueError(f"labels must be non-empty and unique, got {list(ds.labels)}")
    if n and (ds.y.min() < 0 or ds.y.max() >= len(ds.labels)):
        raise ValueError(f"y must lie in 0..{len(ds.labels) - 1}")
    if not np.isfinite(ds.sample_rate_hz) or ds.sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz must be positive, got {ds.sample_rate_hz}")
    if not np.all(np.isfinite(ds.X)):
        raise ValueError("X holds NaN or infinite values")


def window_dataset_to_arrays(ds: WindowDataset) -> dict[str, np.ndarray]:
    """The arrays of the `.npz`, none of them object arrays (loadable without pickle)."""
    arrays = {
        "X": ds.X,
        "y": ds.y,
        "subject": ds.subject,
        "labels": np.array(ds.labels, dtype=str),
        "channels": np.array(ds.channels, dtype=str),
        "sample_rate_hz": np.array(ds.sample_rate_hz, dtype=np.float64),
    }
    if ds.recording is not None:
        arrays["recording"] = ds.recording
    if ds.start_s is not None:
        arrays["start_s"] = ds.start_s
    return arrays


def window_dataset_from_arrays(arrays: dict[str, np.ndarray]) -> WindowDataset:
    """Build and validate a dataset from the arrays of a `.npz` (raises KeyError/ValueError)."""
    return WindowDataset(
        X=arrays["X"],
        y=arrays["y"],
        subject=arrays["subject"],
        labels=tuple(np.atleast_1d(arrays["labels"]).tolist()),
        channels=tuple(np.atleast_1d(arrays["channels"]).tolist()),
        sample_rate_hz=float(arrays["sample_rate_hz"]),
        recording=arrays.get("recording"),
        start_s=arrays.get("start_s"),
    )


def save_window_dataset(ds: WindowDataset, path: str | os.PathLike[str]) -> Path:
    """Write the `.npz` atomically (a reader never sees half a file); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **window_dataset_to_arrays(ds))  # type: ignore[arg-type]
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def check_window_dataset_file(path: str | os.PathLike[str]) -> None:
    """A `.npz` with every required array, checked from its index alone (cheap, before a
    command starts heavy work); `DatasetFileError` with one line otherwise."""
    _read_arrays(Path(path), names=())


def load_window_dataset(path: str | os.PathLike[str]) -> WindowDataset:
    """Read and validate a `.npz`; any problem is one `DatasetFileError` line naming the file."""
    source = Path(path)
    arrays = _read_arrays(source, REQUIRED_ARRAYS + OPTIONAL_ARRAYS)
    try:
        return window_dataset_from_arrays(arrays)
    except (ValueError, TypeError) as exc:
        raise DatasetFileError(f"{source}: invalid window dataset: {_reason(exc)}") from exc


def _read_arrays(source: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays `names` (those present) of a window-dataset file whose index is complete."""
    if not source.is_file():
        raise DatasetFileError(f"{source}: no such window-dataset file")
    try:
        with np.load(source, allow_pickle=False) as npz:
            missing = [name for name in REQUIRED_ARRAYS if name not in npz.files]
            if missing:
                raise DatasetFileError(
                    f"{source}: not a window dataset (missing {', '.join(missing)})"
                )
            return {name: npz[name] for name in names if name in npz.files}
    except DatasetFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DatasetFileError(
            f"{source}: not a readable .npz window dataset ({_reason(exc)})"
        ) from exc


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
