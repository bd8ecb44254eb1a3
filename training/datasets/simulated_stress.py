"""Simulated wrist PPG under rest and acute stress, processed to heart-rate windows.

Each subject gets a resting heart rate, RMSSD, breathing rate and Mayer-wave amplitude drawn
from published population ranges, and their own stress response (heart-rate rise, RMSSD fall,
faster breathing, stronger low-frequency oscillation). A baseline and a stress segment are
rendered as PPG (`hardware.sensors.ppg`), beats are detected exactly as a wearable would, and the
resampled heart-rate series is windowed. Resting heart rate varies across people more than
stress raises it, so window-mean heart rate alone is a weak classifier; the dynamics inside the
window (variability, breathing rhythm) carry the signal. Parameters and sources: docs/data.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware.sensors.cardiac import HeartRhythm, beat_times
from hardware.sensors.ppg import PpgSensor, ppg_from_beats
from training.datasets.heart_rate_windows import (
    heart_rate_channels_from_ppg,
    heart_rate_window_spec,
    stress_meta,
    trusted_windows,
)
from training.datasets.simulated_subjects import simulated_subjects
from training.datasets.window_dataset import WindowDataset
from training.datasets.windowing import Recording

DEFAULT_SUBJECTS = 20  # WESAD has 15; more people help a model generalise to new ones
SEGMENT_S = 900.0  # 15 minutes per condition
BURST_AREA_S = 11.25 / 0.4725  # integral of one unit-peak burst (5 s rise, 15 s decay)


@dataclass(frozen=True)
class StressSubject:
    """One person's rhythm at rest and under stress, and their PPG sensor."""

    rest: HeartRhythm
    stress: HeartRhythm
    sensor: PpgSensor


def _mean_burst_bpm(per_min: float, peak_bpm: float) -> float:
    """Average heart-rate lift of the bursts: rate x mean height x area of one unit burst."""
    return per_min / 60.0 * 0.75 * peak_bpm * BURST_AREA_S


def random_stress_subject(rng: np.random.Generator) -> StressSubject:
    """Draw a person; every range is documented with its source in docs/data.md."""
    rest_hr = rng.uniform(55.0, 95.0)
    rest_rmssd = rng.uniform(20.0, 75.0) * 70.0 / rest_hr  # vagal tone falls as rest HR rises
    rest_breathing = rng.uniform(11.0, 15.0)
    rest_lf = rng.uniform(15.0, 35.0)
    rest = HeartRhythm(
        rest_hr, rest_rmssd, rest_breathing, rest_lf, drift_bpm=2.0, drift_tau_s=120.0
    )
    phasic_per_min = float(rng.uniform(2.0, 4.0))
    phasic_bpm = float(rng.uniform(8.0, 14.0))
    mean_rise = rng.uniform(4.0, 16.0)  # total, of which the bursts supply their average
    tonic_rise = max(0.0, mean_rise - _mean_burst_bpm(phasic_per_min, phasic_bpm))
    stress = HeartRhythm(
        mean_hr_bpm=rest_hr + tonic_rise,
        rmssd_ms=rest_rmssd * rng.uniform(0.60, 0.85),
        breathing_per_min=rest_breathing + rng.uniform(5.0, 9.0),
        lf_amplitude_ms=rest_lf * rng.uniform(0.9, 1.4),
        drift_bpm=3.0,
        drift_tau_s=120.0,
        onset_from_bpm=rest_hr,
        phasic_per_min=phasic_per_min,
        phasic_bpm=phasic_bpm,
    )
    sensor = PpgSensor(
        pulse_amplitude=float(rng.uniform(0.5, 2.0)),
        noise_sd=float(rng.uniform(0.02, 0.08)),
        artefacts_per_min=float(rng.uniform(0.2, 1.0)),
    )
    return StressSubject(rest=rest, stress=stress, sensor=sensor)


def simulate_heart_rate(
    rhythm: HeartRhythm, sensor: PpgSensor, duration_s: float, rng: np.random.Generator
) -> np.ndarray:
    """Beats -> PPG -> detected beats -> (samples, 2) [hr, hr_diff] at 4 Hz, NaN if untrusted."""
    beats = beat_times(rhythm, duration_s, rng)
    ppg = ppg_from_beats(beats, duration_s, sensor, rng)
    return heart_rate_channels_from_ppg(ppg, sensor.sample_rate_hz, duration_s)


def _subject_recordings(
    subject_id: int, person: StressSubject, segment_s: float, rng: np.random.Generator
) -> list[Recording]:
    recordings = []
    for label, rhythm in enumerate((person.rest, person.stress)):
        channels = simulate_heart_rate(rhythm, person.sensor, segment_s, rng)
        recordings.append(
            Recording(channels, label, subject_id, recording_id=subject_id * 10 + label)
        )
    return recordings


def prepare(
    path: str | None = None,
    seed: int = 0,
    subjects: int | None = None,
    segment_s: float = SEGMENT_S,
    window_s: float = 60.0,
    overlap: float = 0.75,
) -> WindowDataset:
    """Windows of the simulated heart-rate series; subjects are numbered 1..N."""
    del path  # simulated: nothing to read
    recordings = []
    for subject_id, rng in simulated_subjects(subjects, DEFAULT_SUBJECTS, seed):
        person = random_stress_subject(rng)
        recordings += _subject_recordings(subject_id, person, segment_s, rng)
    return trusted_windows(recordings, heart_rate_window_spec(window_s, overlap), stress_meta())
