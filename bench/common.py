"""What every benchmark part shares: the watch bundle, the machine, medians, the results files.

Each figure a part reports is the median of several runs with their min and max
(`median_of`), and each results file carries the machine it ran on (`machine_description`),
so `bench/report.py` can print both without anyone typing a number.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WATCH_TASK = "har"
WATCH_SEED = 0
WATCH_MIN_AGREEMENT = 0.98
_PACKAGES = ("numpy", "msgpack", "paho-mqtt", "ai-edge-litert", "tensorflow", "flwr")


@dataclass(frozen=True)
class WatchBundle:
    """The `watch` dataset, the training run and the verified int8 bundle made from it."""

    data: Path
    bundle: Path
    run: Path


def watch_bundle(
    cache: Path | None = None, announce: Callable[[str], None] | None = None
) -> WatchBundle:
    """The `har` task's data and bundle from the simulation cache; trains once if missing."""
    from iomt.simulation.model_cache import (
        ModelRequest,
        default_cache_dir,
        prepare_data,
        prepare_model,
    )
    from iomt.simulation.tasks import TASKS

    cache = cache or default_cache_dir()
    say = announce or _to_stderr
    preset = TASKS[WATCH_TASK]
    data = prepare_data(preset, None, cache, WATCH_SEED, say)
    request = ModelRequest(
        preset,
        preset.pretrain_subjects,
        preset.test_subjects,
        preset.epochs,
        preset.size,
        WATCH_MIN_AGREEMENT,
        WATCH_SEED,
    )
    prepared = prepare_model(request, data, cache, say)
    return WatchBundle(prepared.data, prepared.bundle, prepared.run)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def machine_description() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python and the versions of the packages that matter."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": _ram_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in _PACKAGES},
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def median_of(runs: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """{median, min, max, runs} of repeated measurements (the machine is shared; runs vary)."""
    if not runs:
        raise ValueError("median_of needs at least one run")
    values = [float(v) for v in runs]
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": len(values),
    }


def results_path(part: str) -> Path:
    """`bench/results/PART.json`."""
    return RESULTS_DIR / f"{part}.json"


def write_results(part: str, results: dict[str, Any], out: Path | None = None) -> Path:
    """Write a part's results with the machine attached; returns the path written."""
    path = out or results_path(part)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"part": part, **results, "machine": machine_description()}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def read_results(part: str, directory: Path = RESULTS_DIR) -> dict[str, Any] | None:
    """A part's results, or None when it has not run yet."""
    path = directory / f"{part}.json"
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded
