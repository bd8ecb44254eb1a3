"""From a heart-rate series to window channels: shared by `simulated-stress` and `wesad`.

Channels: `hr` (bpm, resampled at `HR_RATE_HZ`) and `hr_diff` (bpm change between successive
samples, which exposes beat-to-beat variability to the model).
"""

from __future__ import annotations

import numpy as np

from training.datasets.windowing import DatasetMeta, WindowSpec

HR_RATE_HZ = 4.0
WINDOW_S = 60.0
WINDOW_OVERLAP = 0.75
HR_CHANNELS = ("hr", "hr_diff")
STRESS_LABELS = ("non_stress", "stress")


def heart_rate_channels(hr_bpm: np.ndarray) -> np.ndarray:
    """(samples,) heart rate -> (samples, 2) [hr, hr_diff]."""
    hr = np.asarray(hr_bpm, dtype=np.float64)
    diff = np.diff(hr, prepend=hr[:1])
    return np.stack([hr, diff], axis=1)


def heart_rate_window_spec(
    window_s: float = WINDOW_S, overlap: float = WINDOW_OVERLAP
) -> WindowSpec:
    """Window spec in heart-rate samples (60 s at 4 Hz = 240 samples by default)."""
    return WindowSpec(length=round(window_s * HR_RATE_HZ), overlap=overlap)


def stress_meta() -> DatasetMeta:
    return DatasetMeta(labels=STRESS_LABELS, channels=HR_CHANNELS, sample_rate_hz=HR_RATE_HZ)
