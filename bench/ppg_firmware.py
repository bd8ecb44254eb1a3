"""The firmware's C PPG detector, built with the host gcc, run on samples from Python.

`build_ppg_tool` compiles `firmware_bridge/firmware/dsp/iomt_ppg.c` with the harness
`tools/ppg_tool.c` (C99, -Wall -Wextra -Werror -pedantic); `firmware_peaks` pipes float32
samples through it and reads back the int32 peak indices. Used by `python -m bench ppg` and by
`tests/firmware_bridge/test_ppg_c.py`.
"""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

import numpy as np

GCC_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic")


def firmware_dir() -> Path:
    return Path(str(resources.files("firmware_bridge") / "firmware"))


def build_ppg_tool(out_dir: Path) -> Path:
    """Compile the harness into `out_dir`; raises CalledProcessError with gcc's message."""
    firmware = firmware_dir()
    out = out_dir / "ppg_tool"
    sources = [firmware / "tools" / "ppg_tool.c", firmware / "dsp" / "iomt_ppg.c"]
    command = ["gcc", *GCC_FLAGS, "-I", str(firmware / "dsp"), *map(str, sources)]
    subprocess.run([*command, "-lm", "-o", str(out)], check=True, capture_output=True, text=True)
    return out


def firmware_peaks(tool: Path, samples: np.ndarray, rate_hz: float) -> np.ndarray:
    """Peak sample indices the C detector finds; the rate travels as the float32 it holds."""
    rate32 = float(np.float32(rate_hz))
    result = subprocess.run(
        [str(tool), repr(rate32)],
        input=np.asarray(samples).astype("<f4").tobytes(),
        capture_output=True,
        check=True,
    )
    return np.frombuffer(result.stdout, dtype="<i4").astype(np.int64)
