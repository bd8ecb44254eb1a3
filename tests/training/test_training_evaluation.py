import numpy as np

from training.evaluation import agreement, classification_report, confusion_matrix, macro_f1


def test_confusion_matrix_counts_pairs() -> None:
    matrix = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_macro_f1_matches_hand_computation() -> None:
    # class 0: tp 1, fp 0, fn 1 -> f1 2/3; class 1: tp 1, fp 1, fn 0 -> 2/3; class 2: 1
    matrix = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    assert abs(macro_f1(matrix) - (2 / 3 + 2 / 3 + 1) / 3) < 1e-12


def test_report_per_subject_accuracy() -> None:
    report = classification_report(
        np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), np.array([7, 7, 8, 8]), 2
    )
    assert report.accuracy == 0.75
    assert report.per_subject_accuracy == {7: 1.0, 8: 0.5}
    assert report.to_dict()["per_subject_accuracy"] == {"7": 1.0, "8": 0.5}


def test_agreement() -> None:
    assert agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
