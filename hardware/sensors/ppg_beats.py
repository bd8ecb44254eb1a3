"""Systolic peaks in a PPG: Elgendi et al. (2013), two moving averages over the squared pulse.

Elgendi, Norton, Brearley, Abbott, Schuurmans, "Systolic peak detection in acceleration
photoplethysmograms measured from emergency responders in tropical conditions", PLoS ONE 8(10):
e76585. The 0.5-8 Hz band-passed signal is clipped at zero and squared; a short moving average
(111 ms, one systolic peak) above a long one (667 ms, one beat) plus an offset marks a block of
interest; blocks shorter than the short window are noise; the most prominent local maximum of
each block is the beat, kept if more than 0.3 s after the previous one. The defaults are the
paper's (and NeuroKit2's `ppg_findpeaks(method="elgendi")`, the workstation reference that the
tests compare with). Pure numpy, so a Raspberry Pi runs it; the C firmware runs the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware.sensors.ppg_filter import butterworth_band_pass, zero_phase_filter


@dataclass(frozen=True)
class ElgendiParams:
    """Window lengths in seconds and the threshold offset, as published."""

    peak_window_s: float = 0.111
    beat_window_s: float = 0.667
    beat_offset: float = 0.02  # x mean of the squared signal, added to the beat average
    min_delay_s: float = 0.3


def band_pass_ppg(ppg: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """The 0.5-8 Hz zero-phase Butterworth (2nd order) the detector and the SQI both read."""
    return zero_phase_filter(butterworth_band_pass(sample_rate_hz), ppg)


def elgendi_peaks(
    filtered: np.ndarray, sample_rate_hz: float, params: ElgendiParams = ElgendiParams()
) -> np.ndarray:
    """Sample indices (int64) of systolic peaks in an already band-passed PPG."""
    x = np.asarray(filtered, dtype=np.float64)
    squared = np.where(x > 0.0, x, 0.0) ** 2
    peak_size = int(np.rint(params.peak_window_s * sample_rate_hz))
    beat_size = int(np.rint(params.beat_window_s * sample_rate_hz))
    if x.size < max(beat_size, 2) or peak_size < 1:
        return np.zeros(0, dtype=np.int64)  # shorter than one beat: nothing to find
    threshold = moving_average(squared, beat_size) + params.beat_offset * squared.mean()
    above = moving_average(squared, peak_size) > threshold
    min_delay = int(np.rint(params.min_delay_s * sample_rate_hz))
    peaks: list[int] = []
    for begin, end in _blocks(above):
        if end - begin < peak_size:
            continue
        peak = _most_prominent_maximum(x[begin:end])
        if peak is not None and begin + peak - (peaks[-1] if peaks else 0) > min_delay:
            peaks.append(begin + peak)
    return np.asarray(peaks, dtype=np.int64)


def moving_average(x: np.ndarray, size: int) -> np.ndarray:
    """Mean of `size` samples around each one, the window [i - size//2, i + (size-1)//2], the
    ends padded with the edge value (the centring and padding of scipy's `uniform_filter1d`)."""
    if not 1 <= size <= x.size:
        raise ValueError(f"moving-average window {size} does not fit {x.size} samples")
    padded = np.pad(x, (size // 2, (size - 1) // 2), mode="edge")
    sums = np.concatenate([[0.0], np.cumsum(padded)])
    return np.asarray((sums[size:] - sums[:-size]) / size)


def _blocks(above: np.ndarray) -> list[tuple[int, int]]:
    """(begin, end) of each block of interest: begin is the last sample below before a rise,
    end the last sample above before a fall; a fall before the first rise is ignored."""
    rises = np.flatnonzero(~above[:-1] & above[1:])
    falls = np.flatnonzero(above[:-1] & ~above[1:])
    if rises.size == 0:
        return []
    falls = falls[falls > rises[0]]
    count = min(rises.size, falls.size)
    return list(zip(rises[:count].tolist(), falls[:count].tolist(), strict=True))


def _most_prominent_maximum(x: np.ndarray) -> int | None:
    """Index of the local maximum with the largest topographic prominence inside `x`, or None."""
    inner = np.flatnonzero((x[1:-1] > x[:-2]) & (x[1:-1] > x[2:])) + 1
    if inner.size == 0:
        return None
    prominences = [_prominence(x, int(i)) for i in inner]
    return int(inner[int(np.argmax(prominences))])


def _prominence(x: np.ndarray, peak: int) -> float:
    """Height above the higher of the two lowest points reachable before a higher sample."""
    higher_left = np.flatnonzero(x[:peak] > x[peak])
    higher_right = np.flatnonzero(x[peak + 1 :] > x[peak])
    left = higher_left[-1] + 1 if higher_left.size else 0
    right = peak + 1 + higher_right[0] if higher_right.size else x.size
    return float(x[peak] - max(x[left : peak + 1].min(), x[peak:right].min()))
