import numpy as np
import pytest

from iomt.simulation.partition import cut_groups, partition_by_subject, partition_dirichlet


def _toy() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subjects 1-3, two recordings each (classes 0 and 1), 10 windows per recording."""
    subject = np.repeat([1, 2, 3], 20)
    recording = np.repeat(np.arange(6), 10)
    y = recording % 2
    return y, subject, recording


def test_one_subject_per_device_and_later_windows_kept_out() -> None:
    # Prepare
    y, subject, recording = _toy()
    # Execute
    shards = partition_by_subject(recording, subject, recording, [1, 2, 3], 3, eval_fraction=0.3)
    # Assert
    assert [s.subject for s in shards] == [1, 2, 3]
    for shard in shards:
        assert set(subject[shard.train_index]) == {shard.subject}
        assert not set(shard.train_index) & set(shard.eval_index)
        for rec in np.unique(recording[shard.train_index]):
            train = shard.train_index[recording[shard.train_index] == rec]
            later = shard.eval_index[recording[shard.eval_index] == rec]
            assert len(train) == 7 and len(later) == 3
            assert train.max() < later.min()  # evaluation windows come after training ones
        assert set(y[shard.eval_index]) == {0, 1}  # every activity is scored


def test_more_devices_than_subjects_split_by_recording() -> None:
    _y, subject, recording = _toy()
    shards = partition_by_subject(recording, subject, recording, [1, 2], 4, eval_fraction=0.3)
    assert [s.subject for s in shards] == [1, 1, 2, 2]
    first, second = shards[0], shards[1]
    assert set(recording[first.train_index]).isdisjoint(recording[second.train_index])


def test_test_subjects_never_reach_a_device() -> None:
    _y, subject, recording = _toy()
    shards = partition_by_subject(recording, subject, recording, [1, 2], 2, eval_fraction=0.3)
    owned = np.concatenate([np.concatenate([s.train_index, s.eval_index]) for s in shards])
    assert 3 not in set(subject[owned])


def test_dirichlet_covers_the_pool_once_and_is_seeded() -> None:
    y, subject, recording = _toy()
    first = partition_dirichlet(
        y, recording, subject, [1, 2], 3, alpha=0.5, eval_fraction=0.3, seed=4
    )
    again = partition_dirichlet(
        y, recording, subject, [1, 2], 3, alpha=0.5, eval_fraction=0.3, seed=4
    )
    owned = np.concatenate([np.concatenate([s.train_index, s.eval_index]) for s in first])
    assert sorted(owned.tolist()) == np.flatnonzero(subject != 3).tolist()
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.train_index, b.train_index)


def test_bad_partition_arguments_are_clear() -> None:
    y, subject, recording = _toy()
    with pytest.raises(ValueError, match="at least one device"):
        partition_by_subject(recording, subject, recording, [1], 0, eval_fraction=0.3)
    with pytest.raises(ValueError, match="alpha must be positive"):
        partition_dirichlet(y, recording, subject, [1], 2, alpha=0, eval_fraction=0.3, seed=0)


def test_a_recording_holding_both_classes_is_cut_per_class() -> None:
    """A stress day: calm then stress in one recording; later windows of both classes."""
    # Prepare
    subject = np.ones(20, dtype=np.int64)
    recording = np.zeros(20, dtype=np.int64)
    y = np.repeat([0, 1], 10)
    # Execute
    by_recording = partition_by_subject(recording, subject, recording, [1], 1, 0.3)[0]
    by_group = partition_by_subject(cut_groups(y, recording), subject, recording, [1], 1, 0.3)[0]
    # Assert
    assert set(y[by_recording.eval_index]) == {1}  # the session's end alone: stress only
    assert np.mean(y[by_group.eval_index]) == np.mean(y[by_group.train_index]) == 0.5
    for label in (0, 1):
        train = by_group.train_index[y[by_group.train_index] == label]
        later = by_group.eval_index[y[by_group.eval_index] == label]
        assert train.max() < later.min()


def test_cut_groups_of_one_class_recordings_are_the_recordings() -> None:
    y, _subject, recording = _toy()
    groups = cut_groups(y, recording)
    assert len(np.unique(groups)) == len(np.unique(recording))
    np.testing.assert_array_equal(cut_groups(y, None), y)
