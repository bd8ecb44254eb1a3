"""Evaluate a trained run on chosen subjects: the float model, and the converted ones if given."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from training.datasets.window_dataset import WindowDataset
from training.evaluation import ClassificationReport, classification_report
from training.run_artifacts import TrainedRun
from training.trainer import predict_classes

VariantPredictor = Callable[[np.ndarray], dict[str, np.ndarray]]
"""Normalised windows -> predicted classes per converted variant (e.g. `int8_litert`, `tflm`)."""


def evaluate_run(
    trained: TrainedRun,
    dataset: WindowDataset,
    subjects: list[int],
    predict_variants: VariantPredictor | None = None,
) -> dict[str, ClassificationReport]:
    """One report per model variant: `float`, plus whatever `predict_variants` returns.

    Converted variants come in as a function so that training never imports `convert`.
    """
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
    if predict_variants is not None:
        predictions.update(predict_variants(windows))
    return {
        name: classification_report(selected.y, pred, selected.subject, num_classes)
        for name, pred in predictions.items()
    }
