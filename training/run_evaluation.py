"""Evaluate a trained run on chosen subjects: the float model, and the converted ones if given."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.datasets.window_dataset import WindowDataset
from training.evaluation import ClassificationReport, classification_report
from training.run_artifacts import TrainedRun
from training.trainer import predict_classes


def evaluate_run(
    trained: TrainedRun, dataset: WindowDataset, subjects: list[int], bundle: Path | None = None
) -> dict[str, ClassificationReport]:
    """One report per model variant, keyed `float` (and `int8_litert`, `tflm` with a bundle)."""
    if tuple(dataset.channels) != tuple(trained.channels):
        raise ValueError(
            f"dataset channels {list(dataset.channels)} differ from the run's "
            f"{list(trained.channels)}"
        )
    selected = dataset.for_subjects(subjects)
    if selected.num_windows == 0:
        raise ValueError(f"no windows for subjects {subjects} in the dataset")
    windows = trained.normalise(selected.X)
    num_classes = len(trained.labels)
    predictions = {"float": predict_classes(trained.build_model(batch_size=None), windows)}
    if bundle is not None:
        predictions.update(_bundle_predictions(bundle, windows))
    return {
        name: classification_report(selected.y, pred, selected.subject, num_classes)
        for name, pred in predictions.items()
    }


def _bundle_predictions(bundle: Path, windows: np.ndarray) -> dict[str, np.ndarray]:
    """int8 LiteRT and TFLM predictions from a converted bundle (see `convert.parity`)."""
    from convert.parity import predict_bundle_variants

    return predict_bundle_variants(bundle, windows)
