"""Real PPG recordings and their reference analysis: the examples shipped in the HeartPy wheel.

The `heartpy` wheel (pinned `heartpy==1.2.7` in the `dev` and `bench` extras) carries three
finger/ear PPG recordings (`heartpy/data/data.csv`, `data2.csv`, `data3.csv`) that HeartPy's
documentation analyses. We read the CSV files where pip put them (no import of heartpy), check
their sha256 against the wheel we tested with, and never copy them into this repository.

Licence: HeartPy declares GPL-3.0 (README and PyPI classifier; the wheel's LICENSE file says MIT,
so we assume the stricter). No HeartPy code is copied here. Its analysis, the reference, runs as
a separate program (`python -c`, talking JSON over a pipe) only at test and benchmark time.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

import numpy as np

HEARTPY_VERSION = "1.2.7"
MAX_GAP_S = 3.0


@dataclass(frozen=True)
class RecordingFile:
    """One CSV in the wheel, its pinned hash, and how its time base is given."""

    name: str
    sha256: str
    timing: str  # "rate" (fixed 100 Hz), "ms" (a ms timer column) or "datetime"


RECORDINGS = (
    RecordingFile(
        "data.csv", "b06b8049008b3d9391cd2b9a3b90510b3734426b8833a6de7b7b323b4bda7179", "rate"
    ),
    RecordingFile(
        "data2.csv", "7d85f0d33b04395409e81d614b9bd82541208cc3edfbc5a49b5129ae3cb573b9", "ms"
    ),
    RecordingFile(
        "data3.csv",
        "16eedaa7c97c6ca873e7e424d27a84dcd043d4eca0e4f7611d2a37969192b7ea",
        "datetime",
    ),
)


@dataclass(frozen=True)
class PpgRecording:
    """Samples of one recording and the rate its time base gives."""

    name: str
    samples: np.ndarray  # (samples,) float64 raw sensor values
    sample_rate_hz: float
    path: Path

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate_hz


@dataclass(frozen=True)
class ReferenceAnalysis:
    """HeartPy's `process()` on a recording: its peaks, those it rejected and its mean rate."""

    sample_rate_hz: float
    mean_hr_bpm: float
    peaks: np.ndarray  # (beats,) int64 sample indices
    rejected: np.ndarray  # (rejected,) int64 sample indices, a subset of `peaks`


def heartpy_file(name: str) -> Path:
    """Where pip installed `heartpy/data/NAME`; a clear error if heartpy is not installed."""
    try:
        dist = metadata.distribution("heartpy")
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"real PPG needs the test dependency: pip install heartpy=={HEARTPY_VERSION}"
        ) from None
    return Path(str(dist.locate_file(f"heartpy/data/{name}")))


def load_recording(spec: RecordingFile) -> PpgRecording:
    """Read one CSV, check its hash, derive the sample rate from its own time base."""
    path = heartpy_file(spec.name)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != spec.sha256:
        raise ValueError(f"{path}: sha256 {digest} is not the pinned {spec.sha256}")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if spec.timing == "rate":
        return PpgRecording(spec.name, _column(rows, 0), 100.0, path)
    samples, stamps = _column(rows[1:], 1), [row[0] for row in rows[1:]]
    span_s = _span_s(stamps, spec.timing)
    return PpgRecording(spec.name, samples, len(stamps) / span_s, path)


def _column(rows: list[list[str]], index: int) -> np.ndarray:
    return np.asarray([float(row[index]) for row in rows], dtype=np.float64)


def _span_s(stamps: list[str], timing: str) -> float:
    """First-to-last time of the recording in seconds (rate = samples / span, as HeartPy's)."""
    if timing == "ms":
        return (float(stamps[-1]) - float(stamps[0])) / 1000.0
    first, last = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f") for s in (stamps[0], stamps[-1]))
    return (last - first).total_seconds()


_REFERENCE_PROGRAM = """
import json, sys
import numpy as np, heartpy
samples = np.asarray(json.loads(sys.stdin.read())["samples"], dtype=float)
rate = float(sys.argv[1])
working, measures = heartpy.process(samples, rate)
print(json.dumps({"bpm": float(measures["bpm"]),
                  "peaks": [int(p) for p in working["peaklist"]],
                  "rejected": [int(p) for p in working["removed_beats"]]}))
"""


def reference_analysis(recording: PpgRecording) -> ReferenceAnalysis:
    """HeartPy's analysis of the recording, run as a separate program."""
    result = subprocess.run(
        [sys.executable, "-c", _REFERENCE_PROGRAM, repr(recording.sample_rate_hz)],
        input=json.dumps({"samples": recording.samples.tolist()}),
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    return ReferenceAnalysis(
        recording.sample_rate_hz,
        answer["bpm"],
        np.asarray(answer["peaks"], dtype=np.int64),
        np.asarray(answer["rejected"], dtype=np.int64),
    )


def reference_heart_rate_series(
    reference: ReferenceAnalysis, duration_s: float, rate_hz: float = 4.0
) -> np.ndarray:
    """Heart rate on the grid from the reference's accepted intervals, NaN across gaps > 3 s."""
    times, rr = accepted_intervals(reference)
    grid = np.arange(round(duration_s * rate_hz)) / rate_hz
    hr = np.interp(grid, times, 60.0 / rr)
    after = np.searchsorted(times, grid).clip(1, times.size - 1)
    bridged = (grid >= times[0]) & (grid <= times[-1])
    bridged &= times[after] - times[after - 1] <= MAX_GAP_S
    hr[~bridged] = np.nan
    return np.asarray(hr)


def accepted_intervals(reference: ReferenceAnalysis) -> tuple[np.ndarray, np.ndarray]:
    """(end time s, interval s) between neighbouring peaks that the reference both accepted."""
    peaks = reference.peaks
    accepted = ~np.isin(peaks, reference.rejected)
    both = accepted[1:] & accepted[:-1]
    times = peaks[1:] / reference.sample_rate_hz
    rr = np.diff(peaks) / reference.sample_rate_hz
    return times[both], rr[both]
