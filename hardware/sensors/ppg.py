"""Photoplethysmogram: a numpy PPG generator and the numpy/scipy beat detector a wearable runs.

`ppg_from_beats` turns beat times into a wrist PPG (systolic and diastolic Gaussian pulses,
breathing baseline wander, sensor noise, motion-artefact bursts). `detect_beats` band-passes
the PPG and finds systolic peaks with sub-sample interpolation; `heart_rate_series` rejects
implausible intervals and resamples instantaneous heart rate onto a uniform grid;
`successive_difference_series` does the same for successive RR differences (RMSSD's
ingredient). The same functions process real wrist BVP (WESAD) and simulated PPG, on the
workstation and on a device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter
from scipy.signal import butter, find_peaks, sosfiltfilt

_MEDIAN_BEATS = 31  # ~25 s: longer than any motion burst, so artefact peaks never form a majority


@dataclass(frozen=True)
class PpgSensor:
    """How the optical sensor on one wrist records the pulse."""

    sample_rate_hz: float = 64.0  # Empatica E4 BVP rate
    pulse_amplitude: float = 1.0
    noise_sd: float = 0.05  # relative to pulse amplitude
    baseline_wander: float = 0.3  # breathing / venous baseline, relative to pulse amplitude
    artefacts_per_min: float = 0.5  # motion bursts
    artefact_amplitude: float = 2.0


def ppg_from_beats(
    beats_s: np.ndarray, duration_s: float, sensor: PpgSensor, rng: np.random.Generator
) -> np.ndarray:
    """A PPG trace float64 [samples] at `sensor.sample_rate_hz` with a pulse after every beat."""
    fs = sensor.sample_rate_hz
    t = np.arange(round(duration_s * fs)) / fs
    ppg = np.zeros_like(t)
    for beat in beats_s:
        lo, hi = np.searchsorted(t, [beat, beat + 1.0])
        seg = t[lo:hi] - beat
        ppg[lo:hi] += np.exp(-0.5 * ((seg - 0.18) / 0.06) ** 2) + 0.4 * np.exp(
            -0.5 * ((seg - 0.42) / 0.09) ** 2
        )
    ppg *= sensor.pulse_amplitude
    ppg += (
        sensor.baseline_wander
        * sensor.pulse_amplitude
        * np.sin(2 * np.pi * 0.22 * t + rng.uniform(0, 6.3))
    )
    ppg += rng.normal(0.0, sensor.noise_sd * sensor.pulse_amplitude, size=t.size)
    return np.asarray(ppg + _motion_artefacts(t, sensor, rng))


def _motion_artefacts(t: np.ndarray, sensor: PpgSensor, rng: np.random.Generator) -> np.ndarray:
    duration_s = t[-1] if t.size else 0.0
    count = rng.poisson(sensor.artefacts_per_min * duration_s / 60.0)
    out = np.zeros_like(t)
    for start in rng.uniform(0.0, duration_s, size=count):
        length = rng.uniform(1.0, 4.0)
        mask = (t >= start) & (t < start + length)
        wobble = np.cumsum(rng.normal(0.0, 1.0, size=int(mask.sum())))
        wobble = wobble / (np.abs(wobble).max() + 1e-9)
        out[mask] += sensor.artefact_amplitude * sensor.pulse_amplitude * wobble
    return out


def detect_beats(ppg: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """Systolic peak times (s): 0.5-8 Hz band-pass, peaks >= 0.33 s apart, parabolic refinement."""
    x = np.asarray(ppg, dtype=np.float64).ravel()
    if x.size < 3 * sample_rate_hz:
        return np.zeros(0)
    sos = butter(
        3, [0.5, min(8.0, 0.45 * sample_rate_hz)], btype="band", fs=sample_rate_hz, output="sos"
    )
    filtered = sosfiltfilt(sos, x)
    scale = np.percentile(np.abs(filtered), 90)
    peaks, _ = find_peaks(
        filtered, distance=max(1, int(0.33 * sample_rate_hz)), prominence=0.3 * scale
    )
    peaks = peaks[(peaks > 0) & (peaks < filtered.size - 1)]
    return np.asarray((peaks + _parabolic_offset(filtered, peaks)) / sample_rate_hz)


def _parabolic_offset(x: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    left, mid, right = x[peaks - 1], x[peaks], x[peaks + 1]
    denom = left - 2 * mid + right
    safe = np.where(np.abs(denom) > 1e-12, denom, -1.0)
    return np.asarray(np.clip(0.5 * (left - right) / safe, -0.5, 0.5))


def clean_rr_intervals(beats_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(times, rr_s) of plausible intervals: 0.33-1.5 s and within 25% of the local median."""
    beats_s = np.asarray(beats_s, dtype=np.float64)
    rr = np.diff(beats_s)
    times = beats_s[1:]
    if rr.size == 0:
        return times, rr
    local = _running_median(rr, _MEDIAN_BEATS)
    keep = (rr > 0.33) & (rr < 1.5) & (np.abs(rr - local) < 0.25 * local)
    return times[keep], rr[keep]


def _running_median(values: np.ndarray, size: int) -> np.ndarray:
    """Centred running median; the ends are padded with the median of a whole window, not the
    edge value, so a burst of artefacts at the very start cannot become the reference."""
    half = size // 2
    padded = np.pad(values, half, mode="median", stat_length=min(size, values.size))
    smoothed = np.asarray(median_filter(padded, size=size, mode="nearest"))
    return smoothed[half : half + values.size]


def successive_difference_series(
    beats_s: np.ndarray, duration_s: float, rate_hz: float = 4.0
) -> np.ndarray:
    """|RR_i - RR_(i-1)| in ms between adjacent clean intervals, interpolated onto the grid.

    The running ingredient of RMSSD, the HRV measure wearables report; it falls under stress.
    """
    times, rr = clean_rr_intervals(beats_s)
    adjacent = np.abs((times[1:] - rr[1:]) - times[:-1]) < 1e-6  # no rejected beat in between
    diff_times = times[1:][adjacent]
    diffs_ms = np.abs(np.diff(rr))[adjacent] * 1000.0
    if diffs_ms.size < 2:
        raise ValueError("fewer than two adjacent clean intervals: cannot derive RR differences")
    grid = np.arange(round(duration_s * rate_hz)) / rate_hz
    return np.asarray(np.interp(grid, diff_times, diffs_ms))


def heart_rate_series(beats_s: np.ndarray, duration_s: float, rate_hz: float = 4.0) -> np.ndarray:
    """Instantaneous heart rate (bpm) linearly interpolated onto a uniform grid from t=0."""
    times, rr = clean_rr_intervals(beats_s)
    grid = np.arange(round(duration_s * rate_hz)) / rate_hz
    if rr.size < 2:
        raise ValueError("fewer than two clean heartbeats: cannot derive a heart-rate series")
    return np.interp(grid, times, 60.0 / rr)
