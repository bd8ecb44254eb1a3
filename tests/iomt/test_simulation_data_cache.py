"""The simulation data cache: data a changed loader would prepare differently is not reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iomt.simulation.model_cache import CACHE_VERSION, cached_data_path, prepare_data
from iomt.simulation.tasks import TASKS
from training.datasets.window_dataset import load_window_dataset


def test_a_dataset_cached_by_an_older_version_is_prepared_again(tmp_path: Path) -> None:
    # Prepare: what the version before wrist-frame mirroring left behind, under the old names
    stale = tmp_path / "data"
    stale.mkdir()
    for name in ("watch-seed0.npz", f"watch-seed0-v{CACHE_VERSION - 1}.npz"):
        (stale / name).write_bytes(b"stale")
    # Execute
    path = prepare_data(TASKS["har"], None, tmp_path, seed=0, announce=lambda _: None)
    # Assert
    assert path == cached_data_path(tmp_path, "watch", 0)
    dataset = load_window_dataset(path)
    assert dataset.X.shape[1:] == (128, 6) and len(np.unique(dataset.subject)) == 10
    assert prepare_data(TASKS["har"], None, tmp_path, seed=0, announce=print) == path
