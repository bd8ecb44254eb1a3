"""The registry of dataset sources behind `iomt data prepare SOURCE [PATH]`."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from training.datasets.errors import MissingPathError, UnknownSourceError
from training.datasets.window_dataset import WindowDataset


@dataclass(frozen=True)
class DatasetSource:
    """A named source: the module with its `prepare(path, seed, subjects, **opts)`."""

    name: str
    module: str
    needs_path: bool
    description: str


SOURCES: dict[str, DatasetSource] = {
    source.name: source
    for source in (
        DatasetSource(
            "watch",
            "training.datasets.watch",
            False,
            "real smartwatch physiotherapy IMU shipped in the seglearn wheel",
        ),
        DatasetSource(
            "simulated-har",
            "training.datasets.simulated_har",
            False,
            "simulated 6-axis IMU, six activities",
        ),
        DatasetSource(
            "simulated-stress",
            "training.datasets.simulated_stress",
            False,
            "simulated wrist PPG -> heart-rate windows, stress vs non-stress",
        ),
        DatasetSource(
            "uci-har",
            "training.datasets.uci_har",
            True,
            "UCI HAR Dataset folder (Inertial Signals)",
        ),
        DatasetSource("wisdm", "training.datasets.wisdm", True, "WISDM_ar_v1.1_raw.txt"),
        DatasetSource(
            "wesad",
            "training.datasets.wesad",
            True,
            "WESAD folder with S*/S*.pkl (wrist BVP -> heart rate)",
        ),
    )
}


def get_source(name: str) -> DatasetSource:
    """The source called `name`, or a one-line error listing the known ones."""
    try:
        return SOURCES[name]
    except KeyError:
        raise UnknownSourceError(
            f"unknown dataset source {name!r}; choose one of {', '.join(SOURCES)}"
        ) from None


def prepare_dataset(
    source: str, path: str | None = None, seed: int = 0, **opts: Any
) -> WindowDataset:
    """Load or simulate `source` into a `WindowDataset` (options: `subjects`, per-source extras)."""
    entry = get_source(source)
    if entry.needs_path and not path:
        raise MissingPathError(f"source {source!r} reads files: give PATH ({entry.description})")
    module = importlib.import_module(entry.module)
    return module.prepare(path, seed=seed, **opts)
