"""From detected heartbeats to window channels: shared by `simulated-stress` and `wesad`.

Channels, on a uniform `HR_RATE_HZ` grid: `hr`, instantaneous heart rate (bpm) from
`hardware.sensors.ppg` (so a device computes the same), and `hr_diff`, its change between
successive samples (bpm), which shows the beat-to-beat variability directly. (A channel of
successive RR differences was tried and trained worse: it is spiky after interpolation.)

Untrusted time (the PPG quality index, `hardware.sensors.ppg_quality`) reaches the series as
NaN. `trusted_windows` then drops every window with more than `MAX_UNTRUSTED_SHARE` of its
samples unknown and, in the windows it keeps, fills the short gaps by linear interpolation of
`hr` (and `hr_diff` from the filled `hr`), because a model takes no NaN. The channels stay the
same two, so trained models, bundles and the emulated MCU need no change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from hardware.sensors.ppg import analyse_ppg, heart_rate_series
from training.datasets.window_dataset import WindowDataset
from training.datasets.windowing import (
    DatasetMeta,
    Recording,
    WindowSpec,
    sliding_windows,
    windows_from_recordings,
)

HR_RATE_HZ = 4.0
WINDOW_S = 60.0
WINDOW_OVERLAP = 0.75
HR_CHANNELS = ("hr", "hr_diff")
STRESS_LABELS = ("non_stress", "stress")
MAX_UNTRUSTED_SHARE = 0.25  # a window missing more than 15 s of its 60 s is dropped


def heart_rate_channels(
    beats_s: np.ndarray, duration_s: float, untrusted_s: np.ndarray | None = None
) -> np.ndarray:
    """Detected beat times (s) -> (samples, 2) [hr, hr_diff] in bpm at `HR_RATE_HZ` from t=0,
    NaN where the heart rate is unknown (untrusted spans (spans, 2) s, long gaps)."""
    hr = heart_rate_series(beats_s, duration_s, HR_RATE_HZ, untrusted_s)
    return np.stack([hr, np.diff(hr, prepend=hr[:1])], axis=1)


def heart_rate_channels_from_ppg(
    ppg: np.ndarray, sample_rate_hz: float, duration_s: float
) -> np.ndarray:
    """Raw PPG -> beats and quality (as a device computes them) -> [hr, hr_diff] with NaN."""
    analysis = analyse_ppg(ppg, sample_rate_hz)
    spans = analysis.quality.untrusted_spans_s()
    return heart_rate_channels(analysis.beats_s, duration_s, spans)


def trusted_windows(
    recordings: Sequence[Recording],
    spec: WindowSpec,
    meta: DatasetMeta,
    max_untrusted: float = MAX_UNTRUSTED_SHARE,
) -> WindowDataset:
    """Windows of the heart-rate recordings, the untrusted ones dropped, short gaps filled."""
    shares = [
        sliding_windows(np.isnan(rec.signal[:, 0]).astype(np.float32), spec)[:, :, 0].mean(axis=1)
        for rec in recordings
    ]
    filled = [replace(rec, signal=fill_heart_rate_gaps(rec.signal)) for rec in recordings]
    keep = np.concatenate(shares) <= max_untrusted
    if not keep.any():
        raise ValueError(f"every window has more than {max_untrusted:.0%} untrusted heart rate")
    return windows_from_recordings(filled, spec, meta).select(keep)


def fill_heart_rate_gaps(signal: np.ndarray) -> np.ndarray:
    """(time, [hr, hr_diff]) with NaN -> linear `hr` across gaps (ends held), `hr_diff` of it.

    Only the windows `trusted_windows` keeps (gaps of at most a quarter) are used afterwards."""
    hr, hr_diff = signal[:, 0].astype(np.float64), signal[:, 1].astype(np.float64)
    known = np.isfinite(hr)
    if known.all() or not known.any():
        return np.asarray(np.nan_to_num(signal))
    index = np.arange(hr.size)
    filled = np.interp(index, index[known], hr[known])
    diff = np.where(np.isfinite(hr_diff), hr_diff, np.diff(filled, prepend=filled[:1]))
    return np.stack([filled, diff], axis=1).astype(signal.dtype)


def heart_rate_window_spec(
    window_s: float = WINDOW_S, overlap: float = WINDOW_OVERLAP
) -> WindowSpec:
    """Window spec in heart-rate samples (60 s at 4 Hz = 240 samples by default)."""
    return WindowSpec(length=round(window_s * HR_RATE_HZ), overlap=overlap)


def stress_meta() -> DatasetMeta:
    return DatasetMeta(labels=STRESS_LABELS, channels=HR_CHANNELS, sample_rate_hz=HR_RATE_HZ)
