"""Simulated human-activity recognition: six activities from the emulated IMU, per subject.

Each subject has their own gait, sensor mounting, noise and a different amount of time in each
activity (label skew), so a partition by subject is non-IID in both features and labels.
"""

from __future__ import annotations

import numpy as np

from hardware.sensors.imu import ACTIVITIES, IMU_CHANNELS, generate_imu, random_imu_subject
from training.datasets.simulated_subjects import simulated_subjects
from training.datasets.window_dataset import WindowDataset
from training.datasets.windowing import DatasetMeta, Recording, WindowSpec, windows_from_recordings

SAMPLE_RATE_HZ = 50.0
WINDOW = WindowSpec(length=128, overlap=0.5)  # 2.56 s, as UCI HAR and watch
DEFAULT_SUBJECTS = 10
ACTIVITY_SECONDS = 60.0  # average time per activity per subject


def _subject_recordings(
    subject_id: int, rng: np.random.Generator, activity_seconds: float
) -> list[Recording]:
    wearer = random_imu_subject(rng)
    shares = rng.dirichlet(np.full(len(ACTIVITIES), 4.0)) * len(ACTIVITIES)  # label skew
    recordings = []
    for label, activity in enumerate(ACTIVITIES):
        duration = max(6.0, activity_seconds * shares[label])
        signal = generate_imu(activity, wearer, duration, SAMPLE_RATE_HZ, rng)
        recordings.append(
            Recording(signal, label, subject_id, recording_id=subject_id * 100 + label)
        )
    return recordings


def prepare(
    path: str | None = None,
    seed: int = 0,
    subjects: int | None = None,
    activity_seconds: float = ACTIVITY_SECONDS,
) -> WindowDataset:
    """Windows of 128 samples at 50 Hz, channels acc_x..gyr_z (g, rad/s); subjects 1..N."""
    del path  # simulated: nothing to read
    recordings = []
    for subject_id, rng in simulated_subjects(subjects, DEFAULT_SUBJECTS, seed):
        recordings += _subject_recordings(subject_id, rng, activity_seconds)
    meta = DatasetMeta(labels=ACTIVITIES, channels=IMU_CHANNELS, sample_rate_hz=SAMPLE_RATE_HZ)
    return windows_from_recordings(recordings, WINDOW, meta)
