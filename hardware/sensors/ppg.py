"""Photoplethysmogram: a numpy PPG generator and the numpy heart-rate pipeline a wearable runs.

`ppg_from_beats` turns beat times into a wrist PPG (systolic and diastolic Gaussian pulses,
breathing baseline wander, sensor noise, motion-artefact bursts). `analyse_ppg` band-passes the
PPG, finds systolic peaks with Elgendi's detector (`ppg_beats`), refines them to sub-sample
times and judges each 10 s window's quality (`ppg_quality`); `heart_rate_series` rejects
implausible intervals and those touching untrusted time and resamples instantaneous heart rate
onto a uniform grid, leaving NaN where it does not know;
`successive_difference_series` does the same for successive RR differences (RMSSD's
ingredient). The same functions process real wrist BVP (WESAD) and simulated PPG, on the
workstation and on a device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware.sensors.ppg_beats import band_pass_ppg, elgendi_peaks
from hardware.sensors.ppg_quality import QualityParams, SignalQuality, assess_quality

_MEDIAN_BEATS = 31  # ~25 s: longer than any motion burst, so artefact peaks never form a majority
PULSE_PEAK_DELAY_S = 0.18  # simulated systolic peak after the heartbeat (pulse transit)
MAX_GAP_S = 3.0  # Orphanidou et al. 2015: no heart stops for 3 s; a longer gap is missed beats


@dataclass(frozen=True)
class PpgSensor:
    """How the optical sensor on one wrist records the pulse."""

    sample_rate_hz: float = 64.0  # Empatica E4 BVP rate
    pulse_amplitude: float = 1.0
    noise_sd: float = 0.05  # relative to pulse amplitude
    baseline_wander: float = 0.3  # breathing / venous baseline, relative to pulse amplitude
    artefacts_per_min: float = 0.5  # motion bursts
    artefact_amplitude: float = 2.0


@dataclass(frozen=True)
class SimulatedPpg:
    """A simulated trace and where the motion bursts are (the ground truth for the SQI)."""

    ppg: np.ndarray  # (samples,) float64
    motion: np.ndarray  # (samples,) bool, True inside a motion burst


def ppg_from_beats(
    beats_s: np.ndarray, duration_s: float, sensor: PpgSensor, rng: np.random.Generator
) -> np.ndarray:
    """A PPG trace float64 [samples] at `sensor.sample_rate_hz` with a pulse after every beat."""
    return simulate_ppg(beats_s, duration_s, sensor, rng).ppg


def simulate_ppg(
    beats_s: np.ndarray, duration_s: float, sensor: PpgSensor, rng: np.random.Generator
) -> SimulatedPpg:
    """`ppg_from_beats` that also tells which samples a motion burst covers."""
    fs = sensor.sample_rate_hz
    t = np.arange(round(duration_s * fs)) / fs
    ppg = np.zeros_like(t)
    for beat in beats_s:
        lo, hi = np.searchsorted(t, [beat, beat + 1.0])
        seg = t[lo:hi] - beat
        ppg[lo:hi] += np.exp(-0.5 * ((seg - PULSE_PEAK_DELAY_S) / 0.06) ** 2) + 0.4 * np.exp(
            -0.5 * ((seg - 0.42) / 0.09) ** 2
        )
    ppg *= sensor.pulse_amplitude
    ppg += (
        sensor.baseline_wander
        * sensor.pulse_amplitude
        * np.sin(2 * np.pi * 0.22 * t + rng.uniform(0, 6.3))
    )
    ppg += rng.normal(0.0, sensor.noise_sd * sensor.pulse_amplitude, size=t.size)
    motion, covered = _motion_artefacts(t, sensor, rng)
    return SimulatedPpg(np.asarray(ppg + motion), covered)


def _motion_artefacts(
    t: np.ndarray, sensor: PpgSensor, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(artefact added to each sample, True where a burst is) for random 1-4 s bursts."""
    duration_s = t[-1] if t.size else 0.0
    count = rng.poisson(sensor.artefacts_per_min * duration_s / 60.0)
    out = np.zeros_like(t)
    covered = np.zeros(t.shape, dtype=bool)
    for start in rng.uniform(0.0, duration_s, size=count):
        length = rng.uniform(1.0, 4.0)
        mask = (t >= start) & (t < start + length)
        wobble = np.cumsum(rng.normal(0.0, 1.0, size=int(mask.sum())))
        wobble = wobble / (np.abs(wobble).max() + 1e-9)
        out[mask] += sensor.artefact_amplitude * sensor.pulse_amplitude * wobble
        covered |= mask
    return out, covered


@dataclass(frozen=True)
class PpgAnalysis:
    """What the pipeline found in one recording: every beat, and where it can be trusted."""

    beats_s: np.ndarray  # (beats,) systolic peak times, sub-sample refined
    peaks: np.ndarray  # (beats,) int64 sample index of each peak (what the C firmware reports)
    quality: SignalQuality
    duration_s: float


def analyse_ppg(
    ppg: np.ndarray, sample_rate_hz: float, quality: QualityParams | None = None
) -> PpgAnalysis:
    """Band-pass, Elgendi peaks, parabolic refinement and the per-window quality verdicts."""
    raw = np.asarray(ppg, dtype=np.float64).ravel()
    filtered = band_pass_ppg(raw, sample_rate_hz)
    peaks = elgendi_peaks(filtered, sample_rate_hz)
    peaks = peaks[(peaks > 0) & (peaks < filtered.size - 1)]
    beats_s = (peaks + _parabolic_offset(filtered, peaks)) / sample_rate_hz
    judged = assess_quality(raw, filtered, peaks, sample_rate_hz, quality or QualityParams())
    return PpgAnalysis(np.asarray(beats_s), peaks, judged, raw.size / sample_rate_hz)


def detect_beats(ppg: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """Systolic peak times (s) of every beat Elgendi's detector finds, trusted or not."""
    return analyse_ppg(ppg, sample_rate_hz).beats_s


def _parabolic_offset(x: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Sub-sample peak position from a parabola through three samples (15.6 ms at 64 Hz is
    comparable to RMSSD itself)."""
    left, mid, right = x[peaks - 1], x[peaks], x[peaks + 1]
    denom = left - 2 * mid + right
    safe = np.where(np.abs(denom) > 1e-12, denom, -1.0)
    return np.asarray(np.clip(0.5 * (left - right) / safe, -0.5, 0.5))


def clean_rr_intervals(
    beats_s: np.ndarray, untrusted_s: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(times, rr_s) of plausible intervals: 0.33-1.5 s, within 25% of the local median, and
    neither end in an untrusted span ((spans, 2) [start, end) s; an interval across one is lost)."""
    beats_s = np.asarray(beats_s, dtype=np.float64)
    rr = np.diff(beats_s)
    times = beats_s[1:]
    if rr.size == 0:
        return times, rr
    usable = ~(_in_spans(beats_s[:-1], untrusted_s) | _in_spans(times, untrusted_s))
    local = np.full(rr.size, np.nan)
    if usable.any():
        local[usable] = _running_median(rr[usable], _MEDIAN_BEATS)
    keep = usable & (rr > 0.33) & (rr < 1.5) & (np.abs(rr - local) < 0.25 * local)
    return times[keep], rr[keep]


def _in_spans(times: np.ndarray, spans: np.ndarray | None) -> np.ndarray:
    """(times,) bool: inside any [start, end) span."""
    if spans is None or len(spans) == 0:
        return np.zeros(times.shape, dtype=bool)
    spans = np.asarray(spans, dtype=np.float64)
    return np.asarray(
        ((times[:, None] >= spans[None, :, 0]) & (times[:, None] < spans[None, :, 1])).any(axis=1)
    )


def _running_median(values: np.ndarray, size: int) -> np.ndarray:
    """Centred running median; the ends are padded with the median of a whole window, not the
    edge value, so a burst of artefacts at the very start cannot become the reference."""
    half = size // 2
    padded = np.pad(values, half, mode="median", stat_length=min(size, values.size))
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.asarray(np.median(windows, axis=1))


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


def heart_rate_series(
    beats_s: np.ndarray,
    duration_s: float,
    rate_hz: float = 4.0,
    untrusted_s: np.ndarray | None = None,
) -> np.ndarray:
    """Instantaneous heart rate (bpm) on a uniform grid from t=0, NaN where it is not known.

    Linear between clean intervals no more than `MAX_GAP_S` apart (a longer run of rejected
    beats is not bridged), held for `MAX_GAP_S / 2` beside a clean interval; NaN elsewhere and
    inside untrusted spans.
    """
    times, rr = clean_rr_intervals(beats_s, untrusted_s)
    if rr.size < 2:
        raise ValueError("fewer than two clean heartbeats: cannot derive a heart-rate series")
    grid = np.arange(round(duration_s * rate_hz)) / rate_hz
    hr = np.interp(grid, times, 60.0 / rr)
    after = np.searchsorted(times, grid).clip(1, times.size - 1)
    inside = (grid >= times[0]) & (grid <= times[-1])
    bridged = inside & (times[after] - times[after - 1] <= MAX_GAP_S)
    nearest = np.minimum(np.abs(grid - times[after - 1]), np.abs(times[after] - grid))
    unknown = ~(bridged | (nearest <= MAX_GAP_S / 2))
    hr[unknown | _in_spans(grid, untrusted_s)] = np.nan
    return np.asarray(hr)


def heart_rate_from_ppg(ppg: np.ndarray, sample_rate_hz: float, rate_hz: float = 4.0) -> np.ndarray:
    """The whole pipeline: PPG -> beats -> quality -> heart rate (bpm) with NaN where untrusted."""
    analysis = analyse_ppg(ppg, sample_rate_hz)
    return heart_rate_series(
        analysis.beats_s, analysis.duration_s, rate_hz, analysis.quality.untrusted_spans_s()
    )
