"""Beat times from a session profile whose heart rate, HRV and breathing change over time.

The time-varying counterpart of `hardware.sensors.cardiac.beat_times` (which keeps one steady
rhythm): each RR interval is 60 / heart rate at that moment, plus respiratory sinus arrhythmia
at the current breathing rate sized so the breathing share of RMSSD matches the profile, the
Mayer wave and white jitter.
"""

from __future__ import annotations

import numpy as np

from training.datasets.stress_day import GRID_STEP_S, Profile

_HF_SHARE = 0.85  # share of RMSSD variance carried by breathing (as in hardware.sensors.cardiac)
_LF_BAND_HZ = (0.07, 0.13)
_LF_COMPONENTS = 6


def _breath_phase(profile: Profile, rng: np.random.Generator) -> np.ndarray:
    """Breathing phase (rad) on the grid; the rate wanders by the profile's relative sd."""
    num = profile.breathing_per_min.size
    decay = np.exp(-GRID_STEP_S / 10.0)
    wander = np.empty(num)
    wander[0] = 0.0
    shocks = rng.normal(0.0, np.sqrt(1.0 - decay**2), size=num)
    for i in range(1, num):
        wander[i] = decay * wander[i - 1] + shocks[i]
    rate_hz = (
        profile.breathing_per_min
        / 60.0
        * np.clip(1.0 + profile.breathing_wander * wander, 0.4, 2.0)
    )
    return np.asarray(2 * np.pi * np.cumsum(rate_hz) * GRID_STEP_S + rng.uniform(0, 2 * np.pi))


def _mayer_wave(grid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS-of-a-sinusoid narrow-band oscillation near 0.1 Hz."""
    freqs = rng.uniform(*_LF_BAND_HZ, size=_LF_COMPONENTS)
    phases = rng.uniform(0.0, 2 * np.pi, size=_LF_COMPONENTS)
    waves = np.sin(2 * np.pi * freqs[:, None] * grid[None, :] + phases[:, None])
    return np.asarray(waves.sum(axis=0) / np.sqrt(_LF_COMPONENTS))


def _hf_amplitude_s(
    hr_bpm: np.ndarray, breathing_per_min: np.ndarray, rmssd_ms: np.ndarray
) -> np.ndarray:
    """RR oscillation amplitude (s) that gives breathing its share of RMSSD at this heart rate."""
    per_beat = np.sqrt(2.0) * np.abs(np.sin(np.pi * breathing_per_min / 60.0 * 60.0 / hr_bpm))
    return np.asarray(np.sqrt(_HF_SHARE) * rmssd_ms / 1000.0 / np.maximum(per_beat, 0.05))


def beat_times_from_profile(profile: Profile, rng: np.random.Generator) -> np.ndarray:
    """Times (s) of every heartbeat over the profile's duration."""
    grid = np.arange(profile.hr_bpm.size) * GRID_STEP_S
    phase = _breath_phase(profile, rng)
    lf = profile.lf_ms / 1000.0 * _mayer_wave(grid, rng)
    hf = _hf_amplitude_s(profile.hr_bpm, profile.breathing_per_min, profile.rmssd_ms)
    jitter_sd = np.sqrt((1 - _HF_SHARE) / 2.0) * profile.rmssd_ms / 1000.0
    duration_s = profile.duration_s
    times = []
    t = float(rng.uniform(0.0, 0.5))
    while t < duration_s:
        times.append(t)
        i = min(int(t / GRID_STEP_S), grid.size - 1)
        rr = 60.0 / profile.hr_bpm[i] + hf[i] * np.sin(phase[i]) + lf[i]
        rr += rng.normal(0.0, jitter_sd[i])
        t += float(np.clip(rr, 0.3, 2.0))
    return np.asarray(times)
