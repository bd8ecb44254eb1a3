"""Which windows each simulated device owns, and which of them it may train on.

Pure: takes arrays, returns index arrays. One subject is one device (naturally non-IID); with
more devices than subjects a subject's recordings are dealt out across several devices; a
Dirichlet partition over labels is the classic alternative. Each device's windows are then cut in
time: the earlier part is what it labels and fine-tunes on, the later part is only for measuring
personalisation (never trained on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DeviceShard:
    """One device's windows: indices into the dataset, in time order."""

    device_id: str
    subject: int
    train_index: np.ndarray  # earlier windows: replayed with labels, fine-tuned on
    eval_index: np.ndarray  # later windows: personalisation is measured here only


def cut_groups(y: np.ndarray, recording: np.ndarray | None) -> np.ndarray:
    """The groups the earlier/later cut runs in: each recording's windows of one class.

    A recording of one activity (watch) is one group, as before. A recording that holds both
    classes (a simulated stress day) is cut per class too: cut only by recording, a session's
    last blocks alone would be the later windows, whose class mix (up to 93% stress on subjects
    11-15) is then nothing like the earlier windows the head was personalised on.
    """
    if recording is None:
        return np.asarray(y)
    return np.asarray(recording, dtype=np.int64) * (int(np.max(y)) + 1) + np.asarray(y)


def partition_by_subject(
    y: np.ndarray,
    subject: np.ndarray,
    recording: np.ndarray | None,
    device_subjects: list[int],
    num_devices: int,
    eval_fraction: float,
) -> list[DeviceShard]:
    """Give each device one subject; extra devices split a subject's recordings between them.

    `sessions` labels each window's recording (or class) for the earlier/later cut.
    """
    if num_devices < 1:
        raise ValueError("need at least one device")
    if not device_subjects:
        raise ValueError("no subjects are left for devices")
    groups = _subject_groups(subject, recording, device_subjects, num_devices)
    return [
        _shard(f"dev-{i + 1:02d}", s, index, y, eval_fraction)
        for i, (s, index) in enumerate(groups)
    ]


def partition_dirichlet(
    y: np.ndarray,
    sessions: np.ndarray,
    subject: np.ndarray,
    device_subjects: list[int],
    num_devices: int,
    alpha: float,
    eval_fraction: float,
    seed: int,
) -> list[DeviceShard]:
    """Deal the device subjects' windows out by class with Dirichlet(alpha) proportions."""
    if alpha <= 0:
        raise ValueError("--alpha must be positive")
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(np.isin(subject, device_subjects))
    owners: list[list[int]] = [[] for _ in range(num_devices)]
    for label in np.unique(y[pool]):
        members = pool[y[pool] == label]
        cuts = (np.cumsum(rng.dirichlet([alpha] * num_devices))[:-1] * len(members)).astype(int)
        for device, part in enumerate(np.split(members, cuts)):
            owners[device].extend(part.tolist())
    return [
        _shard(
            f"dev-{i + 1:02d}", -1, np.sort(np.array(idx, dtype=np.int64)), sessions, eval_fraction
        )
        for i, idx in enumerate(owners)
    ]


def _subject_groups(
    subject: np.ndarray, recording: np.ndarray | None, device_subjects: list[int], num_devices: int
) -> list[tuple[int, np.ndarray]]:
    per_subject = [num_devices // len(device_subjects)] * len(device_subjects)
    for i in range(num_devices % len(device_subjects)):
        per_subject[i] += 1
    groups = []
    for s, count in zip(device_subjects, per_subject, strict=True):
        if count == 0:
            continue
        index = np.flatnonzero(subject == s)
        if count == 1:
            groups.append((s, index))
            continue
        keys = recording[index] if recording is not None else np.arange(len(index))
        for part in _deal(index, keys, count):
            groups.append((s, part))
    return groups


def _deal(index: np.ndarray, keys: np.ndarray, count: int) -> list[np.ndarray]:
    """Split windows into `count` parts by whole recordings (by contiguous runs otherwise)."""
    recordings = np.unique(keys)
    if len(recordings) >= count:
        buckets = np.array_split(recordings, count)
        return [index[np.isin(keys, bucket)] for bucket in buckets]
    return list(np.array_split(index, count))


def _shard(
    device_id: str, subject: int, index: np.ndarray, y: np.ndarray, eval_fraction: float
) -> DeviceShard:
    """Within each class, the earlier windows train and the last `eval_fraction` evaluate.

    Cutting per class (not over the whole stream) keeps every activity in both parts: a
    subject's recordings come one activity after another, so a single cut in time would leave
    the last activities only in the evaluation part.
    """
    train, evaluate = [], []
    for label in np.unique(y[index]):
        part = index[y[index] == label]
        cut = round(len(part) * (1 - eval_fraction))
        train.append(part[:cut])
        evaluate.append(part[cut:])
    return DeviceShard(
        device_id, subject, np.sort(np.concatenate(train)), np.sort(np.concatenate(evaluate))
    )
