"""Subject-wise splits: no subject's windows in two splits, so test accuracy means new people."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class SubjectSplit:
    """Subjects that train, that choose hyperparameters, and that are looked at once to report."""

    train_subjects: tuple[int, ...]
    val_subjects: tuple[int, ...]
    test_subjects: tuple[int, ...]

    def to_dict(self) -> dict[str, list[int]]:
        """JSON-ready form."""
        return {key: list(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, list[int]]) -> SubjectSplit:
        """Inverse of `to_dict`."""
        return cls(
            *(
                tuple(int(s) for s in data[key])
                for key in ("train_subjects", "val_subjects", "test_subjects")
            )
        )


def split_subjects(
    subjects: np.ndarray,
    test: list[int] | None,
    val: list[int] | None,
    seed: int,
    test_fraction: float = 0.3,
    val_fraction: float = 0.2,
    train: list[int] | None = None,
) -> SubjectSplit:
    """Choose disjoint subject sets; explicit lists win, the rest is a seeded shuffle.

    Without `train`, every subject not in test or validation trains; with it, only those do
    (the simulation pretrains on a few "public" subjects and keeps the rest for devices).
    """
    available = sorted(int(s) for s in np.unique(subjects))
    _check_known(available, test, "test")
    _check_known(available, val, "validation")
    rng = np.random.default_rng(seed)
    remaining = [
        s for s in rng.permutation(available).tolist() if s not in (test or []) + (val or [])
    ]
    if test is None:
        test = sorted(remaining[: max(1, round(test_fraction * len(available)))])
        remaining = [s for s in remaining if s not in test]
    if val is None:
        val = sorted(remaining[: max(1, round(val_fraction * len(available)))])
        remaining = [s for s in remaining if s not in val]
    overlap = set(test) & set(val)
    if overlap:
        raise ValueError(f"subjects {sorted(overlap)} are in both the test and validation splits")
    if train is not None:
        _check_known(available, train, "training")
        clash = set(train) & (set(test) | set(val))
        if clash:
            raise ValueError(f"subjects {sorted(clash)} are in the training and another split")
    else:
        train = [s for s in remaining if s not in test and s not in val]
    train = sorted(train)
    if not train:
        raise ValueError("no subjects left for training after the test and validation splits")
    return SubjectSplit(tuple(train), tuple(sorted(val)), tuple(sorted(test)))


def _check_known(available: list[int], chosen: list[int] | None, name: str) -> None:
    unknown = sorted(set(chosen or []) - set(available))
    if unknown:
        raise ValueError(f"{name} subjects {unknown} are not in the data (subjects: {available})")
