"""What a wrist does to a PPG beyond the sensor's own noise: motion bursts and contact dropouts.

Rates vary over a session (walking and stairs shake the sensor far more than sitting), so they
come from the session profile; `hardware.sensors.ppg.ppg_from_beats` keeps its steady,
activity-independent artefacts. Simulator-side on purpose: the beat detector in
`hardware.sensors.ppg` is the device's and is left alone.
"""

from __future__ import annotations

import numpy as np

from hardware.sensors.ppg import PpgSensor

_DROPOUT_S = (2.0, 10.0)
_BURST_S = (1.0, 4.0)


def _event_times(rate_per_min: np.ndarray, step_s: float, rng: np.random.Generator) -> np.ndarray:
    """Onsets of a Poisson process whose rate changes over time (thinning)."""
    peak = float(rate_per_min.max()) if rate_per_min.size else 0.0
    duration_s = rate_per_min.size * step_s
    if peak <= 0:
        return np.zeros(0)
    candidates = rng.uniform(0.0, duration_s, size=rng.poisson(peak * duration_s / 60.0))
    rate_there = rate_per_min[np.minimum((candidates / step_s).astype(int), rate_per_min.size - 1)]
    return np.sort(candidates[rng.uniform(0.0, peak, size=candidates.size) < rate_there])


def add_motion_and_dropouts(
    ppg: np.ndarray,
    sensor: PpgSensor,
    artefacts_per_min: np.ndarray,
    dropouts_per_min: np.ndarray,
    step_s: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A copy of `ppg` with motion bursts and contact losses at the profile's rates.

    A motion burst adds a random-walk wobble of 2-4x the pulse amplitude for 1-4 s; a dropout
    replaces 2-10 s with sensor noise only (no pulse reaches the photodiode).
    """
    fs = sensor.sample_rate_hz
    out = np.asarray(ppg, dtype=np.float64).copy()
    for onset in _event_times(artefacts_per_min, step_s, rng):
        lo = int(onset * fs)
        hi = min(out.size, lo + int(rng.uniform(*_BURST_S) * fs))
        if hi - lo < 2:
            continue
        wobble = np.cumsum(rng.normal(0.0, 1.0, size=hi - lo))
        wobble /= np.abs(wobble).max() + 1e-9
        out[lo:hi] += rng.uniform(2.0, 4.0) * sensor.pulse_amplitude * wobble
    for onset in _event_times(dropouts_per_min, step_s, rng):
        lo = int(onset * fs)
        hi = min(out.size, lo + int(rng.uniform(*_DROPOUT_S) * fs))
        noise = rng.normal(0.0, 2 * sensor.noise_sd * sensor.pulse_amplitude, size=max(hi - lo, 0))
        out[lo:hi] = noise
    return out
