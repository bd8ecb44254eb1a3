"""Heart rhythm, PPG and the beat detector a wearable runs."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.sensors.cardiac import HeartRhythm, beat_times, rmssd_ms
from hardware.sensors.ppg import (
    PpgSensor,
    clean_rr_intervals,
    detect_beats,
    heart_rate_series,
    ppg_from_beats,
    successive_difference_series,
)


def test_rhythm_has_requested_heart_rate_and_rmssd():
    rhythm = HeartRhythm(
        mean_hr_bpm=72.0, rmssd_ms=40.0, breathing_per_min=14.0, lf_amplitude_ms=20.0
    )
    beats = beat_times(rhythm, 600.0, np.random.default_rng(0))
    assert 60.0 / np.diff(beats).mean() == pytest.approx(72.0, abs=3.0)
    assert rmssd_ms(beats) == pytest.approx(40.0, rel=0.25)


def test_detector_recovers_beats_from_noisy_ppg():
    # Prepare
    rng = np.random.default_rng(1)
    beats = beat_times(HeartRhythm(80.0, 30.0, 15.0, 20.0), 300.0, rng)
    ppg = ppg_from_beats(beats, 300.0, PpgSensor(noise_sd=0.05, artefacts_per_min=0.0), rng)
    # Execute
    detected = detect_beats(ppg, 64.0)
    # Assert: every true beat found within 30 ms (sub-sample refinement; 1 sample = 15.6 ms)
    inner = beats[(beats > 2.0) & (beats < 298.0)]
    nearest = np.abs(detected[None, :] - (inner[:, None] + 0.18)).min(axis=1)
    assert np.percentile(nearest, 95) < 0.03
    assert abs(detected.size - beats.size) <= 3


def test_heart_rate_series_rejects_artefact_intervals():
    beats = np.arange(0.0, 60.0, 0.8)  # 75 bpm
    spurious = np.array([20.1, 20.3, 20.5])  # a motion burst
    _, rr = clean_rr_intervals(np.sort(np.concatenate([beats, spurious])))
    assert np.allclose(rr, 0.8)
    hr = heart_rate_series(np.sort(np.concatenate([beats, spurious])), 60.0, 4.0)
    assert hr.shape == (240,) and np.allclose(hr, 75.0)


def test_too_few_beats_is_an_error():
    with pytest.raises(ValueError, match="fewer than two"):
        heart_rate_series(np.array([1.0]), 10.0)


def test_stress_rhythm_lowers_detected_rmssd():
    rng = np.random.default_rng(2)
    sensor = PpgSensor(artefacts_per_min=0.0)
    calm = detect_beats(
        ppg_from_beats(beat_times(HeartRhythm(70, 50, 14, 20), 300, rng), 300, sensor, rng), 64
    )
    tense = detect_beats(
        ppg_from_beats(beat_times(HeartRhythm(85, 20, 20, 20), 300, rng), 300, sensor, rng), 64
    )
    assert rmssd_ms(clean_rr_intervals(tense)[0]) < rmssd_ms(clean_rr_intervals(calm)[0])


def test_successive_differences_skip_rejected_beats():
    rr = np.array([0.80, 0.82, 0.80, 0.82, 0.80, 0.82] * 10)
    beats = np.concatenate([[0.0], np.cumsum(rr)])
    series = successive_difference_series(beats, float(beats[-1]), 4.0)
    assert np.allclose(series, 20.0)  # |0.82 - 0.80| s = 20 ms everywhere
    with_artefact = np.sort(np.concatenate([beats, [10.1]]))  # splits one interval in two
    assert np.allclose(successive_difference_series(with_artefact, float(beats[-1]), 4.0), 20.0)
