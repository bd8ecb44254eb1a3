"""Elgendi's detector in numpy gives NeuroKit2's beats (the workstation reference) exactly."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.sensors.cardiac import HeartRhythm, beat_times
from hardware.sensors.ppg import PpgSensor, ppg_from_beats
from hardware.sensors.ppg_beats import band_pass_ppg, elgendi_peaks, moving_average
from tests.hardware.ppg_recordings_fixture import real_recordings

nk = pytest.importorskip("neurokit2", reason="NeuroKit2 is the workstation reference")


def neurokit2_peaks(samples: np.ndarray, rate_hz: float) -> np.ndarray:
    cleaned = nk.ppg_clean(samples, sampling_rate=rate_hz, method="elgendi")
    found = nk.ppg_findpeaks(cleaned, sampling_rate=rate_hz, method="elgendi")
    return np.asarray(found["PPG_Peaks"])


def test_band_pass_equals_neurokit2_cleaning_on_real_recordings() -> None:
    for recording in real_recordings():
        rate = recording.sample_rate_hz
        expected = nk.ppg_clean(recording.samples, sampling_rate=rate, method="elgendi")
        ours = band_pass_ppg(recording.samples, rate)
        assert np.abs(ours - expected).max() < 1e-9 * np.abs(expected).max(), recording.name


def test_beats_equal_neurokit2_on_real_recordings() -> None:
    for recording in real_recordings():
        # Execute
        rate = recording.sample_rate_hz
        ours = elgendi_peaks(band_pass_ppg(recording.samples, rate), rate)
        theirs = neurokit2_peaks(recording.samples, rate)
        # Assert: same count, every beat within one sample (in fact identical)
        assert ours.size == theirs.size > 20, recording.name
        assert np.abs(ours - theirs).max() <= 1, recording.name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beats_equal_neurokit2_on_simulated_ppg_with_motion(seed: int) -> None:
    rng = np.random.default_rng(seed)
    beats = beat_times(HeartRhythm(70.0 + 10 * seed, 40.0, 14.0, 25.0), 300.0, rng)
    ppg = ppg_from_beats(beats, 300.0, PpgSensor(artefacts_per_min=3.0), rng)
    ours = elgendi_peaks(band_pass_ppg(ppg, 64.0), 64.0)
    theirs = neurokit2_peaks(ppg, 64.0)
    assert ours.size == theirs.size
    assert np.abs(ours - theirs).max() <= 1


def test_moving_average_centres_like_scipy_uniform_filter() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    x = np.random.default_rng(3).normal(size=200)
    for size in (1, 4, 7, 11, 67):
        expected = ndimage.uniform_filter1d(x, size, mode="nearest")
        assert np.allclose(moving_average(x, size), expected, atol=1e-12), size


def test_flat_signal_has_no_beats() -> None:
    assert elgendi_peaks(np.zeros(1000), 64.0).size == 0


def test_signal_shorter_than_one_beat_window_has_no_beats() -> None:
    x = np.sin(np.linspace(0.0, 3.0, 30))  # 30 samples < 0.667 s x 64 Hz
    assert elgendi_peaks(x, 64.0).size == 0
