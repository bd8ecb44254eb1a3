"""Small real bundles for the firmware runner tests: the simulation's own data and model cache.

`iomt data prepare`, `iomt train` (two epochs: the runner is under test, not the model) and
`iomt convert` run as child processes, exactly as `iomt simulate` prepares its bundle.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TEST_EPOCHS = 2


@dataclass(frozen=True)
class FirmwareCase:
    """A bundle and its int8 test windows."""

    name: str
    bundle: Path
    windows: np.ndarray  # normalised float windows of the task's test subjects


def prepare_case(cache: Path, task: str, size: str, epochs: int = TEST_EPOCHS) -> FirmwareCase:
    """Bundle of `task` at `size` (cached in `cache`) and the normalised test-subject windows."""
    from bundle_format.reader import load_bundle
    from iomt.simulation.model_cache import ModelRequest, prepare_data, prepare_model
    from iomt.simulation.tasks import TASKS
    from training.datasets.window_dataset import load_window_dataset

    preset = TASKS[task]
    data = prepare_data(preset, None, cache, 0, _say)
    request = ModelRequest(
        preset, preset.pretrain_subjects, preset.test_subjects, epochs, size, 0.0, 0
    )
    prepared = prepare_model(request, data, cache, _say)
    bundle = load_bundle(prepared.bundle)
    test = load_window_dataset(prepared.data).for_subjects(preset.test_subjects)
    return FirmwareCase(f"{task}-{preset.arch}-{size}", prepared.bundle, bundle.normalise(test.X))


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
