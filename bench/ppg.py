"""`python -m bench ppg`: heart rate from PPG against a reference, real and simulated.

    python -m bench ppg [--seed 0] [--sim-duration-s 600] [--artefacts-per-min 2] [--out PATH]

Real: the three recordings in the HeartPy wheel (`bench.ppg_recordings`), each against HeartPy's
own analysis: mean heart rate both ways, mean absolute error of the 4 Hz heart-rate series where
both have one, share of time our quality index marks untrusted (and why), and whether our numpy
detector gives NeuroKit2's `ppg_findpeaks(method="elgendi")` beats and the firmware's C detector
(built with the host gcc when there is one) the same beats. Simulated: `hardware.sensors`
PPG with motion bursts, against the simulator's known beats: beat-time error, share found, share
untrusted, heart-rate error. Writes `bench/results/ppg.json`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import write_results
from bench.ppg_firmware import FirmwareAnalysis, build_ppg_tool, firmware_analysis
from bench.ppg_recordings import (
    RECORDINGS,
    PpgRecording,
    load_recording,
    reference_analysis,
    reference_heart_rate_series,
)
from bench.ppg_report import report_section
from hardware.sensors.cardiac import HeartRhythm, beat_times
from hardware.sensors.ppg import (
    PULSE_PEAK_DELAY_S,
    PpgAnalysis,
    PpgSensor,
    analyse_ppg,
    clean_rr_intervals,
    heart_rate_series,
    simulate_ppg,
)
from hardware.sensors.ppg_beats import band_pass_ppg, elgendi_peaks

__all__ = ["evaluate_recording", "evaluate_simulated", "main", "report_section"]

HR_RATE_HZ = 4.0
MATCH_S = 0.1  # a detected beat within 100 ms of a known one is that beat


@dataclass(frozen=True)
class RecordingFigures:
    """One real recording against its reference."""

    name: str
    sample_rate_hz: float
    duration_s: float
    reference_mean_hr_bpm: float
    mean_hr_bpm: float
    mean_hr_error_bpm: float
    hr_mae_bpm: float  # over the grid where both series have a value
    compared_share: float  # share of the grid where both have a value
    untrusted_share: float
    untrusted_reasons: dict[str, int]  # windows per verdict
    beats: int
    neurokit2_beats: int | None
    neurokit2_max_offset_samples: int | None  # None: no neurokit2, or a different beat count
    firmware_beats: int | None
    firmware_max_offset_samples: int | None  # the C detector; None: no gcc, or other count
    firmware_same_verdicts: bool | None  # the C quality index gives every window our verdict


def mean_heart_rate(analysis: PpgAnalysis) -> float:
    """60 / mean clean interval over trusted time (HeartPy's `bpm` is defined the same way)."""
    _, rr = clean_rr_intervals(analysis.beats_s, analysis.quality.untrusted_spans_s())
    return float(60.0 / rr.mean())


def heart_rate_of(analysis: PpgAnalysis) -> np.ndarray:
    """The 4 Hz heart-rate series with NaN where untrusted."""
    spans = analysis.quality.untrusted_spans_s()
    return heart_rate_series(analysis.beats_s, analysis.duration_s, HR_RATE_HZ, spans)


def neurokit2_peaks(recording: PpgRecording) -> np.ndarray | None:
    """NeuroKit2's Elgendi peaks (the workstation reference), None without neurokit2."""
    try:
        import neurokit2 as nk
    except ImportError:
        return None
    rate = recording.sample_rate_hz
    cleaned = nk.ppg_clean(recording.samples, sampling_rate=rate, method="elgendi")
    found = nk.ppg_findpeaks(cleaned, sampling_rate=rate, method="elgendi")["PPG_Peaks"]
    return np.asarray(found, dtype=np.int64)


def max_offset(ours: np.ndarray, theirs: np.ndarray) -> int | None:
    """Largest index difference between two beat lists of equal length, None if lengths differ."""
    if ours.size != theirs.size:
        return None
    return int(np.abs(ours - theirs).max()) if ours.size else 0


def c_pipeline(recording: PpgRecording, tool: Path | None) -> FirmwareAnalysis | None:
    """The firmware's beats and verdicts on the same samples, None without a built tool."""
    if tool is None:
        return None
    return firmware_analysis(tool, recording.samples, recording.sample_rate_hz)


def evaluate_recording(recording: PpgRecording, tool: Path | None = None) -> RecordingFigures:
    """Our pipeline against HeartPy (mean, series) and NeuroKit2 (beat indices)."""
    reference = reference_analysis(recording)
    analysis = analyse_ppg(recording.samples, recording.sample_rate_hz)
    ours = heart_rate_of(analysis)
    theirs = reference_heart_rate_series(reference, recording.duration_s, HR_RATE_HZ)
    both = np.isfinite(ours) & np.isfinite(theirs)
    mean_hr = mean_heart_rate(analysis)
    detector = elgendi_peaks(
        band_pass_ppg(recording.samples, recording.sample_rate_hz), recording.sample_rate_hz
    )
    nk_peaks = neurokit2_peaks(recording)
    firmware = c_pipeline(recording, tool)
    return RecordingFigures(
        name=recording.name,
        sample_rate_hz=recording.sample_rate_hz,
        duration_s=recording.duration_s,
        reference_mean_hr_bpm=reference.mean_hr_bpm,
        mean_hr_bpm=mean_hr,
        mean_hr_error_bpm=mean_hr - reference.mean_hr_bpm,
        hr_mae_bpm=float(np.abs(ours - theirs)[both].mean()),
        compared_share=float(both.mean()),
        untrusted_share=analysis.quality.untrusted_share(),
        untrusted_reasons=dict(Counter(analysis.quality.verdicts)),
        beats=int(detector.size),
        neurokit2_beats=None if nk_peaks is None else int(nk_peaks.size),
        neurokit2_max_offset_samples=None if nk_peaks is None else max_offset(detector, nk_peaks),
        firmware_beats=None if firmware is None else int(firmware.peaks.size),
        firmware_max_offset_samples=None
        if firmware is None
        else max_offset(detector, firmware.peaks),
        firmware_same_verdicts=None
        if firmware is None
        else firmware.verdicts == analysis.quality.verdicts,
    )


@dataclass(frozen=True)
class SimulatedFigures:
    """Simulated PPG with motion bursts against the simulator's known beats."""

    duration_s: float
    sample_rate_hz: float
    artefacts_per_min: float
    known_beats: int
    found_share_trusted: float  # known beats in trusted time with a trusted detection near
    false_share_trusted: float  # trusted detections with no known beat near
    beat_bias_ms: float  # mean (detected - known systolic peak), trusted matches
    beat_mae_ms: float  # mean |detected - known systolic peak|, trusted matches
    untrusted_share: float
    untrusted_share_in_bursts: float  # of the time inside motion bursts
    hr_mae_bpm: float  # against the heart rate of the known beats, where ours has a value


def simulated_recording(
    seed: int, duration_s: float, artefacts_per_min: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, PpgSensor]:
    """(known beats s, PPG, motion mask per sample, sensor) of one simulated wearer."""
    rng = np.random.default_rng(seed)
    sensor = PpgSensor(artefacts_per_min=artefacts_per_min)
    beats = beat_times(HeartRhythm(72.0, 40.0, 14.0, 25.0), duration_s, rng)
    simulated = simulate_ppg(beats, duration_s, sensor, rng)
    return beats, simulated.ppg, simulated.motion, sensor


def evaluate_simulated(
    seed: int = 0, duration_s: float = 600.0, artefacts_per_min: float = 2.0
) -> SimulatedFigures:
    """Beat-time and heart-rate error of the pipeline on simulated PPG with motion."""
    beats, ppg, motion, sensor = simulated_recording(seed, duration_s, artefacts_per_min)
    fs = sensor.sample_rate_hz
    analysis = analyse_ppg(ppg, fs)
    trusted = analysis.quality.trusted_samples()
    known = beats + PULSE_PEAK_DELAY_S
    known = known[known * fs < ppg.size - 1]
    known_trusted = known[trusted[(known * fs).astype(np.int64)]]
    found = analysis.beats_s[trusted[analysis.peaks]]
    offsets = _nearest_offsets(known_trusted, found)
    matched = np.abs(offsets) < MATCH_S
    spare = np.abs(_nearest_offsets(found, known_trusted)) >= MATCH_S
    ours = heart_rate_of(analysis)
    truth = heart_rate_series(known, duration_s, HR_RATE_HZ)
    both = np.isfinite(ours) & np.isfinite(truth)
    return SimulatedFigures(
        duration_s=duration_s,
        sample_rate_hz=fs,
        artefacts_per_min=artefacts_per_min,
        known_beats=int(known.size),
        found_share_trusted=float(matched.mean()),
        false_share_trusted=float(spare.mean()),
        beat_bias_ms=float(offsets[matched].mean() * 1000.0),
        beat_mae_ms=float(np.abs(offsets[matched]).mean() * 1000.0),
        untrusted_share=analysis.quality.untrusted_share(),
        untrusted_share_in_bursts=float(1.0 - trusted[motion].mean()) if motion.any() else 0.0,
        hr_mae_bpm=float(np.abs(ours - truth)[both].mean()),
    )


def _nearest_offsets(targets: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """For each target, (nearest candidate - target); inf where there is no candidate."""
    if candidates.size == 0:
        return np.full(targets.shape, np.inf)
    index = np.searchsorted(candidates, targets).clip(1, max(1, candidates.size - 1))
    left = candidates[np.minimum(index - 1, candidates.size - 1)]
    right = candidates[np.minimum(index, candidates.size - 1)]
    nearest = np.where(np.abs(left - targets) <= np.abs(right - targets), left, right)
    return np.asarray(nearest - targets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ppg", description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sim-duration-s", type=float, default=600.0)
    parser.add_argument("--artefacts-per-min", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        tool = build_ppg_tool(Path(scratch)) if shutil.which("gcc") else None
        recordings = [asdict(evaluate_recording(load_recording(s), tool)) for s in RECORDINGS]
    simulated = evaluate_simulated(args.seed, args.sim_duration_s, args.artefacts_per_min)
    results: dict[str, Any] = {"recordings": recordings, "simulated": asdict(simulated)}
    results["argv"] = list(argv or [])
    for row in recordings:
        print(
            f"{row['name']}: mean HR {row['mean_hr_bpm']:.1f} vs {row['reference_mean_hr_bpm']:.1f}"
            f" bpm, series MAE {row['hr_mae_bpm']:.2f} bpm,"
            f" untrusted {row['untrusted_share']:.1%}"
        )
    print(f"simulated: {asdict(simulated)}")
    print(f"wrote {write_results('ppg', results, args.out)}")
    return 0
