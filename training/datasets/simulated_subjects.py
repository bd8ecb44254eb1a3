"""The people a simulator makes: subjects 1..N, each with a random stream of their own."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def simulated_subjects(
    subjects: int | None, default: int, seed: int
) -> Iterator[tuple[int, np.random.Generator]]:
    """Yield `(subject_id, rng)` for subjects 1..N (N = `subjects`, else `default`).

    Each subject's generator is seeded by `(seed, subject_id)`, so a subject is the same person
    whatever N is.
    """
    num_subjects = default if subjects is None else subjects
    if num_subjects < 1:
        raise ValueError(f"--subjects must be >= 1, got {num_subjects}")
    for subject_id in range(1, num_subjects + 1):
        yield subject_id, np.random.default_rng([seed, subject_id])
