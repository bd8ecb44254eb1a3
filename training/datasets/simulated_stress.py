"""Simulated wrist PPG through a day of stress and everything else that moves heart rate.

Each subject (`stress_person`) has their own resting heart rate, HRV, breathing, stress
reactivity (one in five a blunted responder), fitness and PPG sensor. They record
`SESSIONS` sessions (`stress_day`): a seated baseline, then two stress episodes and two of
walking, stairs (then seated recovery), standing, talking or sitting, in random order, under a
slow wander and sometimes a caffeine-like drift. Heart rate, HRV and breathing follow the
blocks with delays and recoveries, and stress episodes land with partial intensity. The
profile becomes beats (`stress_rhythm`), a wrist PPG (`hardware.sensors.ppg`) with activity-
dependent motion bursts and contact dropouts (`ppg_disturbances`), the detected beats a device
would find with its quality index, and the `hr`, `hr_diff` series a wearable computes (windows
mostly of untrusted heart rate dropped, short gaps filled). People listed as `lab_subjects`
record a laboratory protocol instead (`stress_day.random_lab_session`: seated, stressors and
rests only, no caffeine): what a public dataset such as WESAD holds, unlike a fleet's daily
life. Each 60 s window takes the self-reported label at its centre (reports are sometimes wrong
and their boundaries blurred).
Heart rate rises for many reasons, so window-mean heart rate is a weak classifier; only the
shape of the response tells stress apart, and not always. Parameters and sources: docs/data.md.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from hardware.sensors.ppg import ppg_from_beats
from training.datasets.heart_rate_windows import (
    HR_RATE_HZ,
    MAX_UNTRUSTED_SHARE,
    fill_heart_rate_gaps,
    heart_rate_channels_from_ppg,
    heart_rate_window_spec,
    stress_meta,
)
from training.datasets.ppg_disturbances import add_motion_and_dropouts
from training.datasets.simulated_subjects import simulated_subjects
from training.datasets.stress_day import (
    GRID_STEP_S,
    random_lab_session,
    random_session,
    session_profile,
)
from training.datasets.stress_person import StressPerson, random_stress_person
from training.datasets.stress_rhythm import beat_times_from_profile
from training.datasets.window_dataset import WindowDataset
from training.datasets.windowing import WindowSpec, sliding_windows, window_starts

DEFAULT_SUBJECTS = 20  # WESAD has 15; more people help a model generalise to new ones
SESSIONS = 2  # per subject; a device's later windows are the end of each session
LAB_STRESSOR_SCALE = 1.5  # the TSST's rise (about 15 bpm) against daily stressors' (10)


def simulate_session(
    person: StressPerson, rng: np.random.Generator, lab: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """One session -> ((samples, 2) [hr, hr_diff] at 4 Hz, NaN if untrusted; (samples,) label)."""
    if lab:
        profile = session_profile(
            person, random_lab_session(rng), rng, drifts=False, stressor_scale=LAB_STRESSOR_SCALE
        )
    else:
        profile = session_profile(person, random_session(rng), rng)
    duration_s = profile.duration_s
    beats = beat_times_from_profile(profile, rng)
    ppg = ppg_from_beats(beats, duration_s, person.sensor, rng)
    ppg = add_motion_and_dropouts(
        ppg, person.sensor, profile.artefacts_per_min, profile.dropouts_per_min, GRID_STEP_S, rng
    )
    channels = heart_rate_channels_from_ppg(ppg, person.sensor.sample_rate_hz, duration_s)
    at = np.minimum((np.arange(len(channels)) / HR_RATE_HZ / GRID_STEP_S).astype(int),
                    profile.label.size - 1)  # fmt: skip
    return channels, profile.label[at]


def _session_windows(
    channels: np.ndarray, label: np.ndarray, length: int, overlap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(windows, their label at the centre, their start in s) of the trusted windows.

    As `heart_rate_windows.trusted_windows` does for one-label recordings: a window with more
    than `MAX_UNTRUSTED_SHARE` of its heart rate unknown is dropped, short gaps are filled.
    """
    spec = WindowSpec(length, overlap)
    starts = window_starts(len(channels), spec)
    unknown = sliding_windows(np.isnan(channels[:, :1]).astype(np.float32), spec)[:, :, 0]
    keep = unknown.mean(axis=1) <= MAX_UNTRUSTED_SHARE
    windows = sliding_windows(fill_heart_rate_gaps(channels), spec)
    centre = label[starts + length // 2]
    return windows[keep], centre[keep], starts[keep] / HR_RATE_HZ


def prepare(
    path: str | None = None,
    seed: int = 0,
    subjects: int | None = None,
    sessions: int = SESSIONS,
    window_s: float = 60.0,
    overlap: float = 0.75,
    lab_subjects: Collection[int] = (),
) -> WindowDataset:
    """Windows of the simulated heart-rate series; subjects are numbered 1..N, and those in
    `lab_subjects` were recorded in the lab (the others' windows do not change)."""
    del path  # simulated: nothing to read
    length = heart_rate_window_spec(window_s, overlap).length
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("X", "y", "subject", "rec", "start")}
    for subject_id, rng in simulated_subjects(subjects, DEFAULT_SUBJECTS, seed):
        person = random_stress_person(rng)
        for session in range(sessions):
            channels, label = simulate_session(person, rng, lab=subject_id in lab_subjects)
            windows, window_label, start = _session_windows(channels, label, length, overlap)
            parts["X"].append(windows.astype(np.float32))
            parts["y"].append(window_label)
            parts["subject"].append(np.full(len(windows), subject_id))
            parts["rec"].append(np.full(len(windows), subject_id * 10 + session))
            parts["start"].append(start)
    meta = stress_meta()
    return WindowDataset(
        X=np.concatenate(parts["X"]),
        y=np.concatenate(parts["y"]),
        subject=np.concatenate(parts["subject"]),
        labels=meta.labels,
        channels=meta.channels,
        sample_rate_hz=meta.sample_rate_hz,
        recording=np.concatenate(parts["rec"]),
        start_s=np.concatenate(parts["start"]).astype(np.float64),
    )
