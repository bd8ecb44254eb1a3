"""Classification metrics from predictions: pure numpy, shared by train, evaluate and convert."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClassificationReport:
    """Accuracy, macro-F1, per-subject accuracy and the confusion matrix of one split."""

    accuracy: float
    macro_f1: float
    per_subject_accuracy: dict[int, float]
    confusion: np.ndarray  # (true class, predicted class)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (subject ids become strings, as JSON keys must)."""
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_subject_accuracy": {str(k): v for k, v in self.per_subject_accuracy.items()},
            "confusion_matrix": self.confusion.tolist(),
        }


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def macro_f1(confusion: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over the classes present in truth or prediction."""
    true_positive = np.diag(confusion).astype(float)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    present = (predicted + actual) > 0
    f1 = 2 * true_positive / np.maximum(predicted + actual, 1)
    return float(f1[present].mean()) if present.any() else 0.0


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, subjects: np.ndarray, num_classes: int
) -> ClassificationReport:
    """Everything `metrics.json` reports for one split."""
    confusion = confusion_matrix(y_true, y_pred, num_classes)
    per_subject = {
        int(s): float(np.mean(y_pred[subjects == s] == y_true[subjects == s]))
        for s in np.unique(subjects)
    }
    return ClassificationReport(
        accuracy=float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
        macro_f1=macro_f1(confusion),
        per_subject_accuracy=per_subject,
        confusion=confusion,
    )


def agreement(reference: np.ndarray, other: np.ndarray) -> float:
    """Fraction of windows where two models predict the same class."""
    return float(np.mean(reference == other)) if len(reference) else 0.0
