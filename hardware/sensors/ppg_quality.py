"""Which stretches of a PPG can be trusted for heart rate: a signal-quality index per 10 s window.

A detector always finds *something*; on a flat trace, a clipped one or one shaken by motion, the
peaks it reports are not heartbeats, and a heart rate interpolated through them is invented. Each
window of `window_s` gets one verdict, checked in this order:

- `clipped`: at least 10% of the window sits in runs of 3+ samples at the recording's extreme
  value (the ADC rail);
- `flat`: the raw signal hardly moves (lost contact, sensor off) - more than half the samples
  repeat their predecessor, or the band-passed amplitude is under 2% of the recording's median;
- `motion`: the band-passed amplitude exceeds 3x the recording's median window amplitude;
- `rhythm` and `morphology`: the feasibility rules and template match of Orphanidou et al. 2015
  (IEEE JBHI 19(3):832-838), which were derived for exactly this decision on wearable PPG/ECG -
  heart rate 40-180 bpm, no gap between beats over 3 s, longest/shortest interval under 2.2, and
  the mean correlation of each beat with the window's average beat at least 0.86.

Pure numpy, per window, so a device can run it on the window it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRUSTED = "ok"


@dataclass(frozen=True)
class QualityParams:
    """Thresholds of the index; defaults are the published ones where a publication has them."""

    window_s: float = 10.0
    min_hr_bpm: float = 40.0
    max_hr_bpm: float = 180.0
    max_gap_s: float = 3.0
    max_interval_ratio: float = 2.2
    min_template_correlation: float = 0.86
    max_repeated_share: float = 0.5
    min_amplitude_ratio: float = 0.02
    max_amplitude_ratio: float = 3.0
    max_clipped_share: float = 0.1


@dataclass(frozen=True)
class SignalQuality:
    """Verdict per window: `verdicts[i]` covers samples [starts[i], starts[i] + window)."""

    starts: np.ndarray  # (windows,) int64 first sample
    window: int  # samples per window (the last one may be shorter)
    verdicts: tuple[str, ...]  # TRUSTED or the reason it is not
    num_samples: int
    sample_rate_hz: float

    @property
    def trusted(self) -> np.ndarray:
        """(windows,) bool."""
        return np.asarray([verdict == TRUSTED for verdict in self.verdicts], dtype=bool)

    def untrusted_share(self) -> float:
        """Share of the recording's time that is not trusted."""
        return float(1.0 - self.trusted_samples().mean()) if self.num_samples else 0.0

    def trusted_samples(self) -> np.ndarray:
        """(samples,) bool: True where the window holding the sample is trusted."""
        return np.repeat(self.trusted, self.window)[: self.num_samples]

    def untrusted_spans_s(self) -> np.ndarray:
        """(spans, 2) [start, end) in seconds of each run of untrusted windows."""
        bad = np.concatenate([[False], ~self.trusted, [False]])
        edges = np.flatnonzero(bad[1:] != bad[:-1])
        starts = self.starts[edges[0::2]]
        ends = np.minimum(self.starts[edges[1::2] - 1] + self.window, self.num_samples)
        return np.stack([starts, ends], axis=1).astype(np.float64) / self.sample_rate_hz


def assess_quality(
    raw: np.ndarray,
    filtered: np.ndarray,
    peaks: np.ndarray,
    sample_rate_hz: float,
    params: QualityParams = QualityParams(),
) -> SignalQuality:
    """One verdict per `params.window_s` window of a recording (raw, band-passed, its peaks)."""
    raw = np.asarray(raw, dtype=np.float64).ravel()
    window = max(1, round(params.window_s * sample_rate_hz))
    starts = np.arange(0, raw.size, window, dtype=np.int64)
    amplitudes = np.asarray([filtered[s : s + window].std() for s in starts])
    context = _RecordingContext(
        raw.max(), raw.min(), float(np.median(amplitudes)), sample_rate_hz, params
    )
    verdicts = tuple(
        _window_verdict(raw[s : s + window], filtered[s : s + window], peaks, int(s), context)
        for s in starts
    )
    return SignalQuality(starts, window, verdicts, raw.size, sample_rate_hz)


@dataclass(frozen=True)
class _RecordingContext:
    """What a window is judged against: the recording's extremes and typical amplitude."""

    raw_max: float
    raw_min: float
    median_amplitude: float
    sample_rate_hz: float
    params: QualityParams


def _window_verdict(
    raw: np.ndarray, filtered: np.ndarray, peaks: np.ndarray, start: int, ctx: _RecordingContext
) -> str:
    p = ctx.params
    amplitude = filtered.std()
    if _clipped_share(raw, ctx.raw_min, ctx.raw_max) >= p.max_clipped_share:
        return "clipped"
    if _repeated_share(raw) > p.max_repeated_share or amplitude < (
        p.min_amplitude_ratio * ctx.median_amplitude
    ):
        return "flat"
    if amplitude > p.max_amplitude_ratio * ctx.median_amplitude:
        return "motion"
    inside = peaks[(peaks >= start) & (peaks < start + raw.size)] - start
    if not _feasible_rhythm(inside, raw.size, ctx.sample_rate_hz, p):
        return "rhythm"
    if _template_correlation(filtered, inside) < p.min_template_correlation:
        return "morphology"
    return TRUSTED


def _repeated_share(raw: np.ndarray) -> float:
    return float(np.mean(np.diff(raw) == 0.0)) if raw.size > 1 else 1.0


def _clipped_share(raw: np.ndarray, low: float, high: float) -> float:
    """Share of samples in runs of at least 3 equal samples at the recording's min or max."""
    at_rail = (raw == low) | (raw == high)
    run_start = np.concatenate([[True], raw[1:] != raw[:-1]])
    run_id = np.cumsum(run_start) - 1
    run_length = np.bincount(run_id)[run_id]
    return float(np.mean(at_rail & (run_length >= 3)))


def _feasible_rhythm(
    peaks: np.ndarray, num_samples: int, sample_rate_hz: float, p: QualityParams
) -> bool:
    """Orphanidou's rules: plausible rate, no long gap (edges included), regular enough."""
    if peaks.size < 2:
        return False
    intervals = np.diff(peaks) / sample_rate_hz
    rate = 60.0 / intervals.mean()
    edges = np.array([peaks[0], num_samples - 1 - peaks[-1]]) / sample_rate_hz
    gaps_ok = max(intervals.max(), edges.max()) <= p.max_gap_s
    regular = intervals.max() / intervals.min() <= p.max_interval_ratio
    return bool(p.min_hr_bpm <= rate <= p.max_hr_bpm and gaps_ok and regular)


def _template_correlation(filtered: np.ndarray, peaks: np.ndarray) -> float:
    """Mean correlation of each beat (median interval, centred on its peak) with their mean."""
    half = int(np.median(np.diff(peaks))) // 2
    inner = peaks[(peaks - half >= 0) & (peaks + half < filtered.size)]
    if inner.size < 2 or half < 2:
        return 0.0
    beats = np.stack([filtered[i - half : i + half + 1] for i in inner])  # (beats, samples)
    template = beats.mean(axis=0)
    correlations = [np.corrcoef(beat, template)[0, 1] for beat in beats]
    return float(np.mean(correlations))
