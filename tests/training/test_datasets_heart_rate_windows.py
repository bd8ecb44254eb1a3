"""Heart-rate windows know the PPG quality: mostly-untrusted windows go, short gaps are filled."""

from __future__ import annotations

import numpy as np

from training.datasets.heart_rate_windows import (
    fill_heart_rate_gaps,
    heart_rate_window_spec,
    stress_meta,
    trusted_windows,
)
from training.datasets.windowing import Recording


def test_windows_mostly_untrusted_are_dropped_and_short_gaps_filled() -> None:
    # Prepare: 5 min at 4 Hz of 70 bpm; 10 s unknown at 30 s, 50 s unknown at 200 s
    hr = np.full(1200, 70.0)
    hr[120:160] = np.nan
    hr[800:1000] = np.nan
    signal = np.stack([hr, np.diff(hr, prepend=hr[:1])], axis=1)
    spec = heart_rate_window_spec()  # 240 samples, stride 60
    # Execute
    ds = trusted_windows([Recording(signal, 0, 1, 1)], spec, stress_meta())
    # Assert: starts 0..960 step 60 (17 windows); those holding > 60 unknown samples are out
    unknown = [np.isnan(hr[s : s + 240]).sum() for s in range(0, 961, 60)]
    assert ds.num_windows == sum(u <= 60 for u in unknown) < 17
    assert np.isfinite(ds.X).all() and np.allclose(ds.X[:, :, 0], 70.0)
    assert np.allclose(ds.X[:, :, 1], 0.0)


def test_gap_is_filled_linearly_between_known_heart_rates() -> None:
    hr = np.array([60.0, np.nan, np.nan, 66.0, 66.0])
    filled = fill_heart_rate_gaps(np.stack([hr, np.diff(hr, prepend=hr[:1])], axis=1))
    assert np.allclose(filled[:, 0], [60.0, 62.0, 64.0, 66.0, 66.0])
    assert np.allclose(filled[:, 1], [0.0, 2.0, 2.0, 2.0, 0.0])
