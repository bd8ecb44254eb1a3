"""Sliding windows over whole recordings, keeping subject, recording and start time.

Windows never straddle two recordings (or two activities), so a window's label is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.datasets.window_dataset import WindowDataset


@dataclass(frozen=True, eq=False)
class Recording:
    """One continuous labelled signal of one subject."""

    signal: np.ndarray  # (samples, channels)
    label: int
    subject: int
    recording_id: int


@dataclass(frozen=True)
class WindowSpec:
    """Window length in samples and the fraction of overlap between neighbours."""

    length: int
    overlap: float = 0.5

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"window length must be >= 1, got {self.length}")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")

    @property
    def stride(self) -> int:
        return max(1, round(self.length * (1.0 - self.overlap)))


def window_starts(num_samples: int, spec: WindowSpec) -> np.ndarray:
    """Start indices of every full window that fits in `num_samples`."""
    if num_samples < spec.length:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, num_samples - spec.length + 1, spec.stride, dtype=np.int64)


def sliding_windows(signal: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """(samples, channels) -> (windows, length, channels), a copy."""
    signal = np.asarray(signal)
    if signal.ndim == 1:
        signal = signal[:, None]
    starts = window_starts(signal.shape[0], spec)
    if starts.size == 0:
        return np.zeros((0, spec.length, signal.shape[1]), dtype=signal.dtype)
    view = np.lib.stride_tricks.sliding_window_view(signal, spec.length, axis=0)  # (n, C, T)
    return np.ascontiguousarray(view[starts].transpose(0, 2, 1))


@dataclass(frozen=True)
class DatasetMeta:
    """What every window of a dataset shares."""

    labels: tuple[str, ...]
    channels: tuple[str, ...]
    sample_rate_hz: float


def windows_from_recordings(
    recordings: Sequence[Recording], spec: WindowSpec, meta: DatasetMeta
) -> WindowDataset:
    """Window each recording separately and stack them into one `WindowDataset`."""
    parts_x, parts_y, parts_subject, parts_recording, parts_start = [], [], [], [], []
    for rec in recordings:
        windows = sliding_windows(rec.signal, spec)
        count = windows.shape[0]
        parts_x.append(windows.astype(np.float32))
        parts_y.append(np.full(count, rec.label, dtype=np.int64))
        parts_subject.append(np.full(count, rec.subject, dtype=np.int64))
        parts_recording.append(np.full(count, rec.recording_id, dtype=np.int64))
        parts_start.append(window_starts(rec.signal.shape[0], spec) / meta.sample_rate_hz)
    if not parts_x or sum(part.shape[0] for part in parts_x) == 0:
        raise ValueError(f"no recording is long enough for a window of {spec.length} samples")
    return WindowDataset(
        X=np.concatenate(parts_x),
        y=np.concatenate(parts_y),
        subject=np.concatenate(parts_subject),
        labels=meta.labels,
        channels=meta.channels,
        sample_rate_hz=meta.sample_rate_hz,
        recording=np.concatenate(parts_recording),
        start_s=np.concatenate(parts_start).astype(np.float64),
    )


def limit_subjects(ds: WindowDataset, num_subjects: int | None) -> WindowDataset:
    """Keep the first `num_subjects` subject ids (sorted); None keeps all."""
    if num_subjects is None:
        return ds
    if num_subjects < 1:
        raise ValueError(f"--subjects must be >= 1, got {num_subjects}")
    return ds.for_subjects(ds.subjects[:num_subjects])
