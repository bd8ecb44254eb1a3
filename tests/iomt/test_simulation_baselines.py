"""Person-by-person scores: each test subject's windows scored on their own."""

from __future__ import annotations

import numpy as np

from edge_runtime.head import Head
from iomt.simulation.baselines import Split, accuracy, accuracy_per_subject


def test_accuracy_per_subject_scores_each_persons_windows_alone() -> None:
    # Prepare: a head that calls class 1 when x1 > x0; subject 3 follows it, subject 5 does not
    head = Head.from_weights([np.eye(2, dtype=np.float32), np.zeros(2, dtype=np.float32)],
                             ["softmax"])  # fmt: skip
    X = np.array([[0, 1], [1, 0], [0, 1], [0, 1], [1, 0], [0, 2]], dtype=np.float32)
    y = np.array([1, 0, 1, 0, 1, 1])
    subject = np.array([3, 3, 3, 5, 5, 5])
    # Execute
    scores = accuracy_per_subject({"a": head, "b": head}, Split(X, y), subject)
    # Assert
    assert scores == {3: {"a": 1.0, "b": 1.0}, 5: {"a": 1 / 3, "b": 1 / 3}}
    assert accuracy(head, Split(X, y)) == 4 / 6
