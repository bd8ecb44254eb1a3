"""What pi-check runs on: a real converted bundle, its test windows and a device's replay file.

The bundle is the real pipeline on the real smartwatch recordings (`iomt data prepare watch`,
`iomt train` an LSTM-FCN, `iomt convert` to a signed full-int8 bundle), made by the
workstation's environment once and cached; the windows are the test subjects' (never trained
on), the same file on x86 and on ARM.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BUNDLE_RECIPE_VERSION = 1
TRAIN_ARGS = ["--arch", "lstm-fcn", "--size", "pi", "--epochs", "3", "--prune-epochs", "0",
              "--sparsity", "0", "--test-subjects", "8,9,10", "--val-subjects", "7",
              "--seed", "0"]  # fmt: skip
TEST_SUBJECTS = (8, 9, 10)
DEVICE_SUBJECT = 4


@dataclass(frozen=True)
class Workload:
    """Files both sides use."""

    data: Path  # the whole window dataset
    bundle: Path  # verified signed int8 bundle
    windows: Path  # test-subject windows the backbone runs on (x86 and ARM)
    device_data: Path  # the replaying device's windows
    corrupt_bundle: Path  # the bundle with its backbone's bytes changed (a wrong model)


def _iomt(args: list[str], log: Path) -> None:
    with log.open("a") as stream:
        stream.write("$ iomt " + " ".join(args) + "\n")
        stream.flush()
        command = ["nice", "-n", "5", sys.executable, "-m", "iomt.cli", *args]
        completed = subprocess.run(command, stdout=stream, stderr=stream, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"`iomt {args[0]}` failed (exit {completed.returncode}); see {log}")


def cached_bundle(cache: Path, log: Path) -> tuple[Path, Path]:
    """(data.npz, bundle) from the cache, prepared, trained and converted when missing."""
    key = hashlib.sha256(json.dumps([BUNDLE_RECIPE_VERSION, TRAIN_ARGS]).encode()).hexdigest()[:12]
    root = cache / "pi-check" / f"watch-{key}"
    data, run, bundle = root / "data.npz", root / "run", root / "bundle"
    if (bundle / "manifest.json").exists():
        return data, bundle
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    _iomt(["data", "prepare", "watch", "--out", str(data)], log)
    _iomt(["train", "--data", str(data), "--out", str(run), *TRAIN_ARGS], log)
    staging = root / "bundle.partial"
    _iomt(["convert", str(run), "--out", str(staging), "--data", str(data)], log)
    staging.rename(bundle)
    return data, bundle


def _subset(data: Path, out: Path, subjects: tuple[int, ...], limit: int) -> Path:
    with np.load(data, allow_pickle=False) as arrays:
        fields = {name: arrays[name] for name in arrays.files}
    chosen = np.flatnonzero(np.isin(fields["subject"], subjects))[:limit]
    for name in ("X", "y", "subject"):
        fields[name] = fields[name][chosen]
    np.savez(out, **fields)
    return out


def _corrupt(bundle: Path, out: Path) -> Path:
    shutil.copytree(bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    backbone = out / next(name for name in manifest["files"] if name.endswith(".tflite"))
    content = bytearray(backbone.read_bytes())
    content[len(content) // 2] ^= 0xFF
    backbone.write_bytes(bytes(content))
    return out


def prepare_workload(cache: Path, work: Path, windows: int, device_windows: int) -> Workload:
    """The cached bundle plus this run's window files under `work`."""
    work.mkdir(parents=True, exist_ok=True)
    data, bundle = cached_bundle(cache, work / "bundle.log")
    return Workload(
        data=data,
        bundle=bundle,
        windows=_subset(data, work / "windows.npz", TEST_SUBJECTS, windows),
        device_data=_subset(data, work / "device.npz", (DEVICE_SUBJECT,), device_windows),
        corrupt_bundle=_corrupt(bundle, work / "corrupt-bundle"),
    )
