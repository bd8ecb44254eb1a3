"""Data and bundle for a simulation, made once and reused while nothing that decides them changes.

Each step runs the real command line (`iomt data prepare`, `iomt train`, `iomt convert`) as a
child process, so the simulation exercises exactly what a user runs and the simulating process
never holds TensorFlow's memory while the fleet runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from iomt.simulation.tasks import TaskPreset

CACHE_VERSION = 7  # bump when a loader, training or conversion changes what the cache holds


@dataclass(frozen=True)
class PreparedModel:
    """Where the data and the verified bundle are, and whether they came from the cache."""

    data: Path
    run: Path
    bundle: Path
    cached: bool


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/iomt` (or `~/.cache/iomt`); `IOMT_CACHE_DIR` overrides."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("IOMT_CACHE_DIR", str(Path(base) / "iomt")))


@dataclass(frozen=True)
class ModelRequest:
    """What decides the bundle: task, subjects, training length, width, parity bar, seed."""

    preset: TaskPreset
    pretrain: tuple[int, ...]
    test: tuple[int, ...]
    epochs: int
    size: str
    min_agreement: float
    seed: int


def cache_key(data_sha256: str, request: ModelRequest) -> str:
    """Hash of everything that decides the bundle."""
    fields = asdict(request)
    del fields["preset"]["learning_rate"]  # the fleet's step, not the bundle's
    decided = {"v": CACHE_VERSION, "data": data_sha256, "request": fields}
    return hashlib.sha256(json.dumps(decided, sort_keys=True).encode()).hexdigest()[:16]


def _iomt(args: list[str], announce: Callable[[str], None]) -> None:
    """Run one `iomt` command as a child; all its output goes to our stderr (stdout is ours)."""
    announce("$ iomt " + " ".join(args))
    completed = subprocess.run(
        [sys.executable, "-m", "iomt.cli", *args], stdout=sys.stderr, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"`iomt {args[0]}` failed with exit code {completed.returncode}")


def prepare_data(
    preset: TaskPreset, data: Path | None, cache: Path, seed: int, announce: Callable[[str], None]
) -> Path:
    """The user's dataset, or the task's source prepared once into the cache."""
    if data is not None:
        if not data.exists():
            raise FileNotFoundError(f"{data}: no such dataset file")
        return data
    path = cached_data_path(cache, preset.source, seed)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        args = ["data", "prepare", preset.source, "--out", str(path), "--seed", str(seed)]
        if preset.source_subjects:
            args += ["--subjects", str(preset.source_subjects)]
        if preset.lab_subjects:
            args += ["--lab-subjects", _ids(preset.lab_subjects)]
        _iomt(args, announce)
    return path


def cached_data_path(cache: Path, source: str, seed: int) -> Path:
    """Versioned, so data a changed loader would prepare differently is never reused."""
    return cache / "data" / f"{source}-seed{seed}-v{CACHE_VERSION}.npz"


def prepare_model(
    request: ModelRequest, data: Path, cache: Path, announce: Callable[[str], None]
) -> PreparedModel:
    """Train the backbone on the public subjects and convert it, unless the cache has it."""
    from bundle_format.reader import sha256_file

    key = cache_key(sha256_file(data), request)
    run, bundle = cache / "runs" / key, cache / "bundles" / key
    if (bundle / "manifest.json").exists() and _verifies(bundle):
        announce(f"reusing cached bundle {bundle}")
        return PreparedModel(data, run, bundle, cached=True)
    _iomt(_train_args(request, data, run), announce)
    convert = ["convert", str(run), "--out", str(bundle), "--data", str(data)]
    convert += ["--task", request.preset.name, "--min-agreement", str(request.min_agreement)]
    _iomt(convert, announce)
    return PreparedModel(data, run, bundle, cached=False)


def _train_args(request: ModelRequest, data: Path, run: Path) -> list[str]:
    preset = request.preset
    args = ["train", "--data", str(data), "--arch", preset.arch, "--size", request.size]
    args += ["--out", str(run), "--epochs", str(request.epochs), "--seed", str(request.seed)]
    args += ["--sparsity", str(preset.sparsity), "--train-subjects", _ids(request.pretrain)]
    args += ["--val-subjects", _ids(preset.pretrain_val_subjects)]
    return [*args, "--test-subjects", _ids(request.test)]


def _ids(subjects: tuple[int, ...]) -> str:
    return ",".join(str(s) for s in subjects)


def _verifies(bundle: Path) -> bool:
    from bundle_format.errors import BundleError
    from bundle_format.reader import load_bundle

    try:
        load_bundle(bundle)
    except BundleError:
        return False
    return True
