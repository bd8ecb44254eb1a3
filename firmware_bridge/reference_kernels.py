"""TensorFlow Lite's reference kernels for the firmware's model runner, fetched at build time.

`firmware/model/fetch_reference_kernels.sh` downloads the pinned Debian source tarballs
(tensorflow 2.14.1, gemmlowp) into the user's cache, checks their sha256 and extracts only the
files the runner compiles, with their licence notices, into a build directory. Nothing of it
is in the repository. This module runs the script and says what a build compiles.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from firmware_bridge.errors import BridgeError

KERNEL_SOURCES = (
    "tensorflow/tensorflow/lite/kernels/internal/common.cc",
    "tensorflow/tensorflow/lite/kernels/internal/runtime_shape.cc",
    "tensorflow/tensorflow/lite/kernels/internal/quantization_util.cc",
    "tensorflow/tensorflow/lite/kernels/internal/reference/portable_tensor_utils.cc",
)


@dataclass(frozen=True)
class RunnerSources:
    """What a firmware build compiles for the model runner, besides its generated plan."""

    sources: tuple[Path, ...]
    include_dirs: tuple[Path, ...]


def model_dir() -> Path:
    """The runner's own C sources (shipped in the package)."""
    return Path(str(resources.files("firmware_bridge") / "firmware" / "model"))


def fetch_reference_kernels(dest: Path) -> Path:
    """Fetch and extract the pinned kernels into `dest`; `BridgeError` with the script's line."""
    script = model_dir() / "fetch_reference_kernels.sh"
    result = subprocess.run(["sh", str(script), str(dest)], capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no output"]
        raise BridgeError(lines[-1])
    return dest


def runner_sources(kernels: Path) -> RunnerSources:
    """The runner's sources and include directories, with kernels fetched into `kernels`."""
    fetch_reference_kernels(kernels)
    own = model_dir()
    sources = (*sorted(own.glob("*.c")), *sorted(own.glob("*.cc")))
    fetched = tuple(kernels / path for path in KERNEL_SOURCES)
    includes = (own, own / "shim", kernels / "tensorflow", kernels / "gemmlowp")
    return RunnerSources((*sources, *fetched), includes)
