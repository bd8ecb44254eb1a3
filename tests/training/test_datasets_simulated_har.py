"""Simulated HAR: six activities, deterministic under seed, different across subjects."""

from __future__ import annotations

import numpy as np

from training.datasets import simulated_har


def test_six_activities_six_channels_per_subject():
    ds = simulated_har.prepare(seed=0, subjects=3, activity_seconds=20.0)
    assert ds.X.shape[1:] == (128, 6) and ds.sample_rate_hz == 50.0
    assert ds.labels == ("walking", "upstairs", "downstairs", "sitting", "standing", "lying")
    assert ds.subjects.tolist() == [1, 2, 3]
    for subject in ds.subjects:
        assert set(ds.y[ds.subject == subject].tolist()) == set(range(6))


def test_deterministic_under_seed():
    first = simulated_har.prepare(seed=7, subjects=2, activity_seconds=10.0)
    again = simulated_har.prepare(seed=7, subjects=2, activity_seconds=10.0)
    other = simulated_har.prepare(seed=8, subjects=2, activity_seconds=10.0)
    np.testing.assert_array_equal(first.X, again.X)
    assert first.X.shape != other.X.shape or not np.allclose(first.X, other.X)


def test_subjects_are_non_iid():
    ds = simulated_har.prepare(seed=0, subjects=4, activity_seconds=30.0)
    lying = ds.y == ds.labels.index("lying")
    gravity = [ds.X[lying & (ds.subject == s), :, :3].mean(axis=(0, 1)) for s in ds.subjects]
    assert np.min([np.linalg.norm(a - b) for a in gravity for b in gravity if a is not b]) > 0.05
    counts = [np.bincount(ds.y[ds.subject == s], minlength=6) for s in ds.subjects]
    assert not all(np.array_equal(counts[0], c) for c in counts[1:])  # label skew too


def test_static_and_dynamic_activities_differ_in_motion():
    ds = simulated_har.prepare(seed=0, subjects=2, activity_seconds=20.0)
    motion = ds.X[:, :, :3].std(axis=1).mean(axis=1)
    walking = motion[ds.y == 0].mean()
    sitting = motion[ds.y == 3].mean()
    assert walking > 5 * sitting
