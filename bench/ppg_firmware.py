"""The firmware's C PPG pipeline, built with the host gcc, run on samples from Python.

`build_ppg_tool` compiles `firmware_bridge/firmware/dsp/iomt_ppg*.c` with the harness
`tools/ppg_tool.c` (C99, -Wall -Wextra -Werror -pedantic); `firmware_analysis` pipes float32
samples through it and reads back the peak indices and the quality verdict of each window.
Used by `python -m bench ppg` and by `tests/firmware_bridge/test_ppg_c.py`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

GCC_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic")
VERDICTS = ("ok", "clipped", "flat", "motion", "rhythm", "morphology")  # iomt_ppg_verdict_t


@dataclass(frozen=True)
class FirmwareAnalysis:
    """What the C pipeline reports for a buffer."""

    peaks: np.ndarray  # (beats,) int64 sample indices
    verdicts: tuple[str, ...]  # one per quality window, names as `hardware.sensors.ppg_quality`


def firmware_dir() -> Path:
    return Path(str(resources.files("firmware_bridge") / "firmware"))


def build_ppg_tool(out_dir: Path) -> Path:
    """Compile the harness into `out_dir`; raises CalledProcessError with gcc's message."""
    firmware = firmware_dir()
    out = out_dir / "ppg_tool"
    sources = [firmware / "tools" / "ppg_tool.c", *sorted((firmware / "dsp").glob("*.c"))]
    command = ["gcc", *GCC_FLAGS, "-I", str(firmware / "dsp"), *map(str, sources)]
    subprocess.run([*command, "-lm", "-o", str(out)], check=True, capture_output=True, text=True)
    return out


def firmware_analysis(tool: Path, samples: np.ndarray, rate_hz: float) -> FirmwareAnalysis:
    """Peaks and window verdicts of the C pipeline; the rate travels as the float32 it holds."""
    rate32 = float(np.float32(rate_hz))
    result = subprocess.run(
        [str(tool), repr(rate32)],
        input=np.asarray(samples).astype("<f4").tobytes(),
        capture_output=True,
        check=True,
    )
    answer = np.frombuffer(result.stdout, dtype="<i4").astype(np.int64)
    num_peaks = int(answer[0])
    peaks = answer[1 : 1 + num_peaks]
    verdicts = answer[2 + num_peaks :]
    assert verdicts.size == answer[1 + num_peaks], "ppg_tool answer is truncated"
    return FirmwareAnalysis(peaks, tuple(VERDICTS[int(v)] for v in verdicts))
