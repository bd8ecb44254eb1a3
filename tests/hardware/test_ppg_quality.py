"""The signal-quality index: each failure mode gets its verdict, clean pulses are trusted."""

from __future__ import annotations

import numpy as np

from hardware.sensors.cardiac import HeartRhythm, beat_times
from hardware.sensors.ppg import (
    PULSE_PEAK_DELAY_S,
    PpgSensor,
    analyse_ppg,
    heart_rate_series,
    simulate_ppg,
)
from hardware.sensors.ppg_quality import TRUSTED

RATE_HZ = 64.0


def clean_ppg(duration_s: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    beats = beat_times(HeartRhythm(70.0, 40.0, 14.0, 25.0), duration_s, rng)
    return simulate_ppg(beats, duration_s, PpgSensor(artefacts_per_min=0.0), rng).ppg


def verdicts_at(ppg: np.ndarray, seconds: list[float]) -> list[str]:
    quality = analyse_ppg(ppg, RATE_HZ).quality
    index = [int(s // 10) for s in seconds]
    return [quality.verdicts[i] for i in index]


def test_clean_pulses_are_trusted_everywhere() -> None:
    quality = analyse_ppg(clean_ppg(120.0), RATE_HZ).quality
    assert set(quality.verdicts) == {TRUSTED}
    assert quality.untrusted_share() == 0.0


def test_flat_line_is_marked_flat() -> None:
    # Prepare: the sensor loses contact from 40 s to 60 s and reports a constant
    ppg = clean_ppg(120.0)
    ppg[round(40 * RATE_HZ) : round(60 * RATE_HZ)] = 0.0
    # Execute / Assert
    assert verdicts_at(ppg, [25.0, 45.0, 55.0, 75.0]) == [TRUSTED, "flat", "flat", TRUSTED]


def test_clipping_at_the_rail_is_marked_clipped() -> None:
    ppg = clean_ppg(120.0)
    rail = np.percentile(ppg, 80)
    window = slice(round(70 * RATE_HZ), round(80 * RATE_HZ))
    ppg[window] = np.minimum(ppg[window] * 3.0, rail)  # gain jump saturates the ADC
    ppg = np.minimum(ppg, rail)
    ppg[: round(70 * RATE_HZ)] = clean_ppg(70.0, seed=1) * 0.2  # elsewhere well below the rail
    ppg[round(80 * RATE_HZ) :] = clean_ppg(40.0, seed=2) * 0.2
    assert verdicts_at(ppg, [35.0, 75.0, 95.0]) == [TRUSTED, "clipped", TRUSTED]


def test_motion_burst_is_not_trusted_and_leaves_a_gap_in_heart_rate() -> None:
    # Prepare: a large random-walk shake from 52 s to 56 s
    ppg = clean_ppg(120.0)
    shake = np.cumsum(np.random.default_rng(5).normal(size=round(4 * RATE_HZ)))
    ppg[round(52 * RATE_HZ) : round(56 * RATE_HZ)] += 8.0 * shake / np.abs(shake).max()
    # Execute
    analysis = analyse_ppg(ppg, RATE_HZ)
    spans = analysis.quality.untrusted_spans_s()
    hr = heart_rate_series(analysis.beats_s, analysis.duration_s, 4.0, spans)
    # Assert: the 50-60 s window is out, and the heart rate there is unknown, not invented
    assert analysis.quality.verdicts[5] != TRUSTED
    assert np.allclose(spans, [[50.0, 60.0]])
    assert np.isnan(hr[200:240]).all()
    assert np.isfinite(hr[8:200]).all() and np.isfinite(hr[240:-8]).all()  # ends: no beat yet


def test_trusted_beats_under_simulated_motion_are_the_known_beats() -> None:
    # Prepare: a wearer with two motion bursts a minute on average
    rng = np.random.default_rng(7)
    beats = beat_times(HeartRhythm(75.0, 35.0, 15.0, 25.0), 600.0, rng)
    simulated = simulate_ppg(beats, 600.0, PpgSensor(artefacts_per_min=2.0), rng)
    # Execute
    analysis = analyse_ppg(simulated.ppg, RATE_HZ)
    trusted = analysis.quality.trusted_samples()
    # Assert: what is trusted is right (beats within 50 ms of the known systolic peaks, both
    # ways), and most of the recording stays trusted
    known = beats + PULSE_PEAK_DELAY_S
    known = known[(known * RATE_HZ < simulated.ppg.size - 1)]
    known = known[trusted[(known * RATE_HZ).astype(int)]]
    found = analysis.beats_s[trusted[analysis.peaks]]
    distance_known = np.abs(found[None, :] - known[:, None]).min(axis=1)
    distance_found = np.abs(known[None, :] - found[:, None]).min(axis=1)
    assert np.mean(distance_known < 0.05) > 0.98
    assert np.mean(distance_found < 0.05) > 0.98
    assert simulated.motion.any() and analysis.quality.untrusted_share() < 0.3
