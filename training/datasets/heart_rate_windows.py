"""From detected heartbeats to window channels: shared by `simulated-stress` and `wesad`.

Channels, on a uniform `HR_RATE_HZ` grid: `hr`, instantaneous heart rate (bpm) from
`hardware.sensors.ppg` (so a device computes the same), and `hr_diff`, its change between
successive samples (bpm), which shows the beat-to-beat variability directly. (A channel of
successive RR differences was tried and trained worse: it is spiky after interpolation.)
"""

from __future__ import annotations

import numpy as np

from hardware.sensors.ppg import heart_rate_series
from training.datasets.windowing import DatasetMeta, WindowSpec

HR_RATE_HZ = 4.0
WINDOW_S = 60.0
WINDOW_OVERLAP = 0.75
HR_CHANNELS = ("hr", "hr_diff")
STRESS_LABELS = ("non_stress", "stress")


def heart_rate_channels(beats_s: np.ndarray, duration_s: float) -> np.ndarray:
    """Detected beat times (s) -> (samples, 2) [hr, hr_diff] in bpm at `HR_RATE_HZ` from t=0."""
    hr = heart_rate_series(beats_s, duration_s, HR_RATE_HZ)
    return np.stack([hr, np.diff(hr, prepend=hr[:1])], axis=1)


def heart_rate_window_spec(
    window_s: float = WINDOW_S, overlap: float = WINDOW_OVERLAP
) -> WindowSpec:
    """Window spec in heart-rate samples (60 s at 4 Hz = 240 samples by default)."""
    return WindowSpec(length=round(window_s * HR_RATE_HZ), overlap=overlap)


def stress_meta() -> DatasetMeta:
    return DatasetMeta(labels=STRESS_LABELS, channels=HR_CHANNELS, sample_rate_hz=HR_RATE_HZ)
