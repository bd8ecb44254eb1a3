"""Facts about a trained model and its data that the manifest records."""

from __future__ import annotations

import numpy as np


def infer_stride(
    start_s: np.ndarray | None,
    recording: np.ndarray | None,
    sample_rate_hz: float,
    window_length: int,
) -> int:
    """Samples between consecutive windows of one recording, else half a window.

    The dataset file keeps window start times, not the stride, so the smallest positive gap
    between starts within a recording is the stride the windows were cut with.
    """
    fallback = max(1, window_length // 2)
    if start_s is None or recording is None or len(start_s) < 2:
        return fallback
    order = np.lexsort((start_s, recording))
    same_recording = np.diff(recording[order]) == 0
    gaps = np.diff(start_s[order])[same_recording]
    gaps = gaps[gaps > 0]
    if len(gaps) == 0:
        return fallback
    return max(1, round(float(gaps.min()) * sample_rate_hz))
