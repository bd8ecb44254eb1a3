"""Trivial baselines that show how hard a dataset is: what a model must beat.

`mean_heart_rate_threshold_accuracy` is the acceptance check for `simulated-stress`: one
threshold on window-mean heart rate, fitted on the training subjects, scored on the test ones.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from training.datasets.window_dataset import WindowDataset


def fit_threshold(values: np.ndarray, y: np.ndarray) -> float:
    """The cut with the best training accuracy for `y = values > cut` (the positive class above)."""
    candidates = np.unique(values)
    accuracies = [np.mean((values > cut) == y) for cut in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def mean_heart_rate_threshold_accuracy(
    ds: WindowDataset, test_subjects: Iterable[int], channel: str = "hr"
) -> float:
    """Held-out accuracy of one threshold on window-mean `channel`, fitted on all other subjects."""
    if ds.num_classes != 2:
        raise ValueError(f"a single threshold needs two classes, the dataset has {ds.num_classes}")
    mean_value = ds.X[:, :, ds.channels.index(channel)].mean(axis=1)
    test = np.isin(ds.subject, np.asarray(list(test_subjects)))
    if not test.any() or test.all():
        raise ValueError(
            "test subjects must be a non-empty strict subset of the dataset's subjects"
        )
    cut = fit_threshold(mean_value[~test], ds.y[~test])
    return float(np.mean((mean_value[test] > cut) == ds.y[test]))
