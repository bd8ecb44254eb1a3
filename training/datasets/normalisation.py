"""Per-channel normalisation fitted on training subjects only.

The same mean and std travel with the model (`normalisation.json`) so a device applies exactly
what training applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from training.datasets.window_dataset import WindowDataset

_MIN_STD = 1e-8


@dataclass(frozen=True, eq=False)
class Normalisation:
    """Per-channel mean and std, each float32 [C]."""

    mean: np.ndarray
    std: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        """The `normalisation.json` content."""
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Normalisation:
        mean = np.asarray(data["mean"], dtype=np.float32)
        std = np.asarray(data["std"], dtype=np.float32)
        if mean.shape != std.shape or mean.ndim != 1:
            raise ValueError(f"mean {mean.shape} and std {std.shape} must be equal-length vectors")
        return cls(mean=mean, std=std)

    def apply(self, X: np.ndarray) -> np.ndarray:
        """(..., C) -> normalised float32 of the same shape."""
        return apply_normalisation(X, self)


def fit_normalisation(ds: WindowDataset, train_subjects: Iterable[int]) -> Normalisation:
    """Mean and std per channel over every sample of the training subjects' windows."""
    train = ds.for_subjects(train_subjects)
    if train.num_windows == 0:
        raise ValueError("no windows belong to the training subjects")
    samples = train.X.reshape(-1, train.num_channels).astype(np.float64)
    mean = samples.mean(axis=0)
    std = samples.std(axis=0)
    std = np.where(std < _MIN_STD, 1.0, std)  # a constant channel passes through unscaled
    return Normalisation(mean=mean.astype(np.float32), std=std.astype(np.float32))


def apply_normalisation(X: np.ndarray, norm: Normalisation) -> np.ndarray:
    """(x - mean) / std per channel, float32."""
    X = np.asarray(X, dtype=np.float32)
    if X.shape[-1] != norm.mean.shape[0]:
        raise ValueError(f"data has {X.shape[-1]} channels, normalisation has {norm.mean.shape[0]}")
    return np.asarray((X - norm.mean) / norm.std, dtype=np.float32)
