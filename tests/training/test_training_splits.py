import numpy as np
import pytest

from training.splits import SubjectSplit, split_subjects


def test_split_explicit_subjects_are_disjoint_and_complete() -> None:
    # Prepare
    subjects = np.repeat(np.arange(1, 11), 5)
    # Execute
    split = split_subjects(subjects, test=[8, 9, 10], val=[6, 7], seed=0)
    # Assert
    assert split.test_subjects == (8, 9, 10)
    assert split.val_subjects == (6, 7)
    assert split.train_subjects == (1, 2, 3, 4, 5)


def test_split_seeded_choice_is_reproducible_and_disjoint() -> None:
    subjects = np.repeat(np.arange(1, 11), 3)
    first = split_subjects(subjects, test=None, val=None, seed=3)
    second = split_subjects(subjects, test=None, val=None, seed=3)
    assert first == second
    groups = [set(first.train_subjects), set(first.val_subjects), set(first.test_subjects)]
    assert sum(len(g) for g in groups) == 10
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


def test_split_unknown_subject_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"test subjects \[42\] are not in the data"):
        split_subjects(np.arange(1, 5), test=[42], val=None, seed=0)


def test_split_overlap_is_refused() -> None:
    with pytest.raises(ValueError, match="both the test and validation"):
        split_subjects(np.arange(1, 6), test=[1, 2], val=[2], seed=0)


def test_split_round_trips_through_dict() -> None:
    split = SubjectSplit((1, 2), (3,), (4, 5))
    assert SubjectSplit.from_dict(split.to_dict()) == split


def test_split_with_explicit_training_subjects_leaves_the_rest_unused() -> None:
    split = split_subjects(np.arange(1, 11), test=[8, 9, 10], val=[3], seed=0, train=[1, 2])
    assert split.train_subjects == (1, 2)
    assert split.val_subjects == (3,)


def test_split_training_subjects_may_not_overlap_test() -> None:
    with pytest.raises(ValueError, match="training and another split"):
        split_subjects(np.arange(1, 6), test=[1], val=[2], seed=0, train=[1, 3])
