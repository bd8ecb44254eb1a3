"""Heart rhythm: beat times from a mean heart rate modulated by breathing, Mayer waves and drift.

The RR interval of each beat is the mean interval plus respiratory sinus arrhythmia (at the
breathing frequency), a 0.1 Hz low-frequency (Mayer-wave) oscillation, a slow random drift of
heart rate and beat-to-beat jitter. Parameters are expressed in the units the literature
reports (bpm, RMSSD in ms, breaths per minute); docs/data.md gives their published ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_LF_BAND_HZ = (0.07, 0.13)
_LF_COMPONENTS = 6
_HF_SHARE = 0.85  # share of RMSSD variance carried by breathing; the rest is white jitter


@dataclass(frozen=True)
class HeartRhythm:
    """Steady-state rhythm of one person in one condition."""

    mean_hr_bpm: float
    rmssd_ms: float
    breathing_per_min: float
    lf_amplitude_ms: float  # RR amplitude of the 0.1 Hz (Mayer-wave) band, as a sinusoid's
    drift_bpm: float = 1.5  # standard deviation of the slow heart-rate wander
    drift_tau_s: float = 40.0
    onset_from_bpm: float | None = None  # heart rate at t=0, approaching mean_hr_bpm
    onset_tau_s: float = 45.0
    phasic_per_min: float = 0.0  # task-evoked heart-rate bursts per minute (acute stress)
    phasic_bpm: float = 0.0  # peak height of one burst


def _phasic_bursts(rhythm: HeartRhythm, grid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sum of heart-rate bursts (5 s rise, 15 s decay) at random times: responses to task events."""
    out = np.zeros_like(grid)
    duration_s = float(grid[-1]) if grid.size else 0.0
    count = rng.poisson(rhythm.phasic_per_min * duration_s / 60.0)
    for start in rng.uniform(-20.0, duration_s, size=count):
        lag = np.clip(grid - start, 0.0, None)
        shape = (1.0 - np.exp(-lag / 5.0)) * np.exp(-lag / 15.0)
        out += rng.uniform(0.5, 1.0) * rhythm.phasic_bpm * shape / 0.4725  # 0.4725: peak of shape
    return out


def ornstein_uhlenbeck(
    num: int, step_s: float, sd: float, tau_s: float, rng: np.random.Generator
) -> np.ndarray:
    """Mean-reverting random wander with stationary standard deviation `sd`."""
    decay = np.exp(-step_s / tau_s)
    shocks = rng.normal(0.0, sd * np.sqrt(1.0 - decay**2), size=num)
    values = np.empty(num)
    values[0] = rng.normal(0.0, sd)
    for i in range(1, num):
        values[i] = decay * values[i - 1] + shocks[i]
    return values


def _hf_amplitude_s(rhythm: HeartRhythm) -> float:
    """RR oscillation amplitude giving the breathing share of RMSSD at this heart rate."""
    rr = 60.0 / rhythm.mean_hr_bpm
    breathing_hz = rhythm.breathing_per_min / 60.0
    per_beat = np.sqrt(2.0) * abs(np.sin(np.pi * breathing_hz * rr))
    return float(np.sqrt(_HF_SHARE) * rhythm.rmssd_ms / 1000.0 / max(per_beat, 1e-3))


def _low_frequency_wave(
    amplitude_s: float, grid: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Narrow-band Mayer wave near 0.1 Hz, as strong (RMS) as a sinusoid of `amplitude_s`."""
    freqs = rng.uniform(*_LF_BAND_HZ, size=_LF_COMPONENTS)
    phases = rng.uniform(0.0, 2 * np.pi, size=_LF_COMPONENTS)
    waves = np.sin(2 * np.pi * freqs[:, None] * grid[None, :] + phases[:, None])
    return np.asarray(amplitude_s / np.sqrt(_LF_COMPONENTS) * waves.sum(axis=0))


def beat_times(rhythm: HeartRhythm, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Times (s) of every heartbeat in [0, duration_s)."""
    grid_step = 0.5
    grid = np.arange(0.0, duration_s + 5.0, grid_step)
    drift = ornstein_uhlenbeck(grid.size, grid_step, rhythm.drift_bpm, rhythm.drift_tau_s, rng)
    drift += _phasic_bursts(rhythm, grid, rng)
    breathing_wander = ornstein_uhlenbeck(grid.size, grid_step, 0.06, 30.0, rng)
    breath_phase = (
        2 * np.pi * np.cumsum(rhythm.breathing_per_min / 60.0 * (1 + breathing_wander)) * grid_step
    )
    breath_phase += rng.uniform(0, 2 * np.pi)
    lf_wave = _low_frequency_wave(rhythm.lf_amplitude_ms / 1000.0, grid, rng)
    hf_amp = _hf_amplitude_s(rhythm)
    jitter_sd = np.sqrt((1 - _HF_SHARE) / 2.0) * rhythm.rmssd_ms / 1000.0
    times = []
    t = float(rng.uniform(0.0, 0.5))
    while t < duration_s:
        times.append(t)
        hr = rhythm.mean_hr_bpm + np.interp(t, grid, drift)
        if rhythm.onset_from_bpm is not None:
            hr += (rhythm.onset_from_bpm - rhythm.mean_hr_bpm) * np.exp(-t / rhythm.onset_tau_s)
        rr = 60.0 / max(hr, 30.0)
        rr += hf_amp * np.sin(np.interp(t, grid, breath_phase))
        rr += np.interp(t, grid, lf_wave)
        rr += rng.normal(0.0, jitter_sd)
        t += float(np.clip(rr, 0.3, 2.0))
    return np.asarray(times)


def rmssd_ms(beat_times_s: np.ndarray) -> float:
    """Root mean square of successive RR differences, in ms."""
    rr = np.diff(np.asarray(beat_times_s))
    if rr.size < 2:
        return float("nan")
    return float(np.sqrt(np.mean(np.diff(rr) ** 2)) * 1000.0)
