"""The training run directory: what `iomt train` writes and `iomt convert`/`evaluate` read.

Layout is fixed in docs/architecture.md. Writing happens only here, so the trainer stays free of
file I/O and every reader goes through `load_run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.models import ModelConfig, build_model
from training.splits import SubjectSplit

RUN_FILES = ("config.json", "weights.h5", "normalisation.json", "dataset.json", "split.json")


@dataclass(frozen=True, eq=False)
class TrainedRun:
    """A finished run: enough to rebuild the model and to normalise new windows identically."""

    path: Path
    config: dict[str, Any]
    model_config: ModelConfig
    mean: np.ndarray
    std: np.ndarray
    labels: tuple[str, ...]
    channels: tuple[str, ...]
    sample_rate_hz: float
    split: SubjectSplit
    dataset: dict[str, Any]

    @property
    def window_length(self) -> int:
        return int(self.config["window_length"])

    @property
    def metrics(self) -> dict[str, Any]:
        """`metrics.json`, or an empty dict if the run has none yet."""
        path = self.path / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def normalise(self, windows: np.ndarray) -> np.ndarray:
        """Apply the training-subject normalisation stored with the run."""
        return ((windows - self.mean) / self.std).astype(np.float32)

    def build_model(self, batch_size: int | None = 1) -> Any:
        """The tf_keras model with the run's weights; batch 1 is what int8 conversion needs."""
        model = build_model(
            self.model_config,
            self.window_length,
            len(self.channels),
            len(self.labels),
            batch_size=batch_size,
        )
        model.load_weights(str(self.path / "weights.h5"))
        return model


def save_run(
    path: Path,
    model: Any,
    config: dict[str, Any],
    mean: np.ndarray,
    std: np.ndarray,
    dataset_info: dict[str, Any],
    split: SubjectSplit,
) -> None:
    """Write the files every later step needs (metrics and history are written by the caller)."""
    path.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(path / "weights.h5"))
    _write_json(path / "config.json", config)
    _write_json(
        path / "normalisation.json",
        {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
    )
    _write_json(path / "dataset.json", dataset_info)
    _write_json(path / "split.json", split.to_dict())


def write_json(path: Path, data: Any) -> None:
    """Public writer for `metrics.json`/`history.json` with the run's formatting."""
    _write_json(path, data)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def check_run_directory(path: Path) -> None:
    """A directory holding every run file; `FileNotFoundError` naming what is missing."""
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a training run directory (run `iomt train` first)")
    missing = [name for name in RUN_FILES if not (path / name).exists()]
    if missing:
        raise FileNotFoundError(f"{path}: incomplete run, missing {', '.join(missing)}")


def load_run(path: Path | str) -> TrainedRun:
    """Read a run directory; a missing or unreadable file is one clear error naming it."""
    path = Path(path)
    check_run_directory(path)
    config = _read_json(path / "config.json")
    normalisation = _read_json(path / "normalisation.json")
    dataset = _read_json(path / "dataset.json")
    return TrainedRun(
        path=path,
        config=config,
        model_config=ModelConfig.from_dict(config["model"]),
        mean=np.asarray(normalisation["mean"], dtype=np.float32),
        std=np.asarray(normalisation["std"], dtype=np.float32),
        labels=tuple(dataset["labels"]),
        channels=tuple(dataset["channels"]),
        sample_rate_hz=float(dataset["sample_rate_hz"]),
        split=SubjectSplit.from_dict(_read_json(path / "split.json")),
        dataset=dataset,
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read ({exc})") from exc
