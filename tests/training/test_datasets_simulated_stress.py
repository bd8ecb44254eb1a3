"""Simulated stress: deterministic, non-IID, and hard in the ways real wrist data is hard.

The acceptance bars, kept cheap (no TensorFlow): a threshold on window-mean heart rate, fitted on
the training subjects, scores at most 0.70 on held-out subjects; and a model on window features
trained on other subjects stays below 0.97 (the simulator this one replaced let it reach 0.998,
and a BiLSTM from two subjects above 0.97: a task that says nothing about federation or
personalisation). Above chance all the same: the stress signal is there to be learnt.
"""

from __future__ import annotations

import numpy as np
import pytest

from training.datasets import simulated_stress
from training.datasets.baselines import mean_heart_rate_threshold_accuracy
from training.datasets.heart_rate_windows import HR_RATE_HZ
from training.datasets.stress_day import (
    GRID_STEP_S,
    Block,
    random_lab_session,
    random_session,
    session_profile,
)
from training.datasets.stress_person import random_stress_person

# the first five test subjects of `iomt simulate --task stress`
TEST_SUBJECTS = (16, 17, 18, 19, 20)


@pytest.fixture(scope="module")
def stress_dataset():
    return simulated_stress.prepare(seed=0)


def window_features(X: np.ndarray) -> np.ndarray:
    """Mean HR, variability, HR spread, breathing-band peak frequency and LF/HF of each window."""
    hr, hr_diff = X[:, :, 0], X[:, :, 1]
    spectrum = np.abs(np.fft.rfft(hr - hr.mean(axis=1, keepdims=True), axis=1)) ** 2 + 1e-9
    freq = np.fft.rfftfreq(hr.shape[1], 1.0 / HR_RATE_HZ)
    hf, lf = (freq > 0.15) & (freq < 0.45), (freq > 0.04) & (freq < 0.15)
    peak = freq[hf][spectrum[:, hf].argmax(axis=1)]
    lf_hf = np.log(spectrum[:, lf].sum(axis=1) / spectrum[:, hf].sum(axis=1))
    variability = np.log(np.sqrt((hr_diff**2).mean(axis=1)) + 1e-3)
    spread = np.log(hr.std(axis=1) + 1e-3)
    return np.stack([hr.mean(axis=1), variability, peak, lf_hf, spread], axis=1)


def logistic_regression_accuracy(ds, test_subjects) -> float:
    features = window_features(ds.X)
    test = np.isin(ds.subject, test_subjects)
    mean, std = features[~test].mean(axis=0), features[~test].std(axis=0)
    train_x, test_x = (features[~test] - mean) / std, (features[test] - mean) / std
    w, b = np.zeros(train_x.shape[1]), 0.0
    for _ in range(2000):
        p = 1.0 / (1.0 + np.exp(-(train_x @ w + b)))
        w -= 0.1 * train_x.T @ (p - ds.y[~test]) / p.size
        b -= 0.1 * float(np.mean(p - ds.y[~test]))
    return float(np.mean(((test_x @ w + b) > 0) == ds.y[test]))


def test_mean_heart_rate_threshold_scores_at_most_070_on_held_out_subjects(stress_dataset):
    assert mean_heart_rate_threshold_accuracy(stress_dataset, TEST_SUBJECTS) <= 0.70


def test_mean_heart_rate_threshold_stays_weak_across_subject_folds(stress_dataset):
    folds = np.array_split(stress_dataset.subjects, 5)
    scores = [mean_heart_rate_threshold_accuracy(stress_dataset, fold) for fold in folds]
    assert np.mean(scores) <= 0.70


def test_a_subject_independent_feature_model_stays_below_097(stress_dataset):
    """Fails on the replaced simulator: its stress was separable from window features.

    Re-checked on the replaced simulator's commit (09e3710, seed 0, 16-20 held out): 0.980.
    """
    accuracy = logistic_regression_accuracy(stress_dataset, TEST_SUBJECTS)
    assert 0.55 <= accuracy < 0.97


def test_shape_channels_and_rough_balance(stress_dataset):
    ds = stress_dataset
    assert ds.X.shape[1:] == (240, 2) and ds.sample_rate_hz == 4.0
    assert ds.channels == ("hr", "hr_diff") and ds.labels == ("non_stress", "stress")
    assert ds.subjects.tolist() == list(range(1, 21))
    assert 0.35 <= ds.y.mean() <= 0.65
    assert ds.X[:, :, 0].min() > 35 and ds.X[:, :, 0].max() < 185
    assert len(np.unique(ds.recording)) == 2 * 20  # two sessions per subject


def test_walking_and_stairs_raise_heart_rate_more_than_stress():
    """Heart rate rises for reasons other than stress: exercise more than stress."""
    rng = np.random.default_rng(7)
    lifts = {"stress": [], "walk": []}
    for _ in range(20):
        person = random_stress_person(rng)
        for kind in lifts:
            blocks = [Block("baseline", 0.0, 240.0, False, False),
                      Block(kind, 240.0, 300.0, kind == "stress", kind == "stress")]  # fmt: skip
            profile = session_profile(person, blocks, rng)
            late = slice(int(420 / GRID_STEP_S), int(540 / GRID_STEP_S))
            lifts[kind].append(profile.hr_bpm[late].mean() - person.rest_hr_bpm)
    assert np.median(lifts["walk"]) > np.median(lifts["stress"]) > 3.0


def test_self_reports_disagree_with_the_protocol_now_and_then():
    rng = np.random.default_rng(0)
    blocks = [b for _ in range(400) for b in random_session(rng) if b.kind != "baseline"]
    misreported = np.mean([b.stress != b.reported_stress for b in blocks])
    assert 0.01 <= misreported <= 0.06


def test_same_seed_same_data_other_seed_other_data():
    first = simulated_stress.prepare(seed=3, subjects=2, sessions=1)
    again = simulated_stress.prepare(seed=3, subjects=2, sessions=1)
    other = simulated_stress.prepare(seed=4, subjects=2, sessions=1)
    np.testing.assert_array_equal(first.X, again.X)
    assert first.X.shape != other.X.shape or not np.allclose(first.X, other.X)


def test_subjects_differ_in_resting_heart_rate(stress_dataset):
    ds = stress_dataset
    rest = [np.median(ds.X[(ds.subject == s) & (ds.y == 0), :, 0]) for s in ds.subjects]
    assert np.ptp(rest) > 15.0  # resting HR spread across people exceeds a stress rise


def test_a_subject_does_not_depend_on_how_many_are_drawn():
    few = simulated_stress.prepare(seed=0, subjects=1, sessions=1)
    more = simulated_stress.prepare(seed=0, subjects=2, sessions=1)
    np.testing.assert_array_equal(few.X, more.for_subjects([1]).X)


def test_a_lab_session_holds_only_stressors_and_seated_rest():
    rng = np.random.default_rng(0)
    sessions = [random_lab_session(rng) for _ in range(50)]
    assert {b.kind for blocks in sessions for b in blocks} == {"baseline", "stress", "sit"}
    assert all(sum(b.kind == "stress" for b in blocks) == 2 for blocks in sessions)


def test_lab_stressors_hit_harder_than_daily_ones():
    """The lab's TSST-sized stressors: the gap a lab-pretrained head meets in daily life."""
    rises: dict[bool, list[float]] = {False: [], True: []}
    for lab in rises:
        rng = np.random.default_rng(11)
        for _ in range(20):
            person = random_stress_person(rng)
            blocks = [Block("baseline", 0.0, 240.0, False, False),
                      Block("stress", 240.0, 300.0, True, True)]  # fmt: skip
            scale = simulated_stress.LAB_STRESSOR_SCALE if lab else 1.0
            profile = session_profile(person, blocks, rng, stressor_scale=scale)
            late = slice(int(420 / GRID_STEP_S), int(540 / GRID_STEP_S))
            rises[lab].append(profile.hr_bpm[late].mean() - person.rest_hr_bpm)
    assert np.median(rises[True]) > 1.3 * np.median(rises[False])


def test_lab_subjects_change_only_their_own_windows():
    daily = simulated_stress.prepare(seed=0, subjects=3, sessions=1)
    lab = simulated_stress.prepare(seed=0, subjects=3, sessions=1, lab_subjects=[2])
    for subject in (1, 3):
        same = daily.for_subjects([subject]).X, lab.for_subjects([subject]).X
        np.testing.assert_array_equal(*same)
    daily_2, lab_2 = daily.for_subjects([2]).X, lab.for_subjects([2]).X
    assert daily_2.shape != lab_2.shape or not np.allclose(daily_2, lab_2)
