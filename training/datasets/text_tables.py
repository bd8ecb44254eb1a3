"""Reading whitespace-separated numeric text files with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.datasets.errors import DatasetFormatError


def read_number_table(path: Path, columns: int | None = None) -> np.ndarray:
    """Rows of numbers -> float64 [rows, columns]; a bad row is an error naming file and line."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: file not found")
    try:
        table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError:
        table = None  # find the offending line below, for a precise message
    if table is None or (columns is not None and table.shape[1] != columns):
        _raise_first_bad_line(path, columns)
    assert table is not None
    return table


def _raise_first_bad_line(path: Path, columns: int | None) -> None:
    expected = columns
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            try:
                [float(field) for field in fields]
            except ValueError:
                raise DatasetFormatError(
                    f"{path}:{line_number}: not a number in {line.strip()[:40]!r}"
                ) from None
            expected = expected if expected is not None else len(fields)
            if len(fields) != expected:
                raise DatasetFormatError(
                    f"{path}:{line_number}: expected {expected} values, found {len(fields)}"
                )
    raise DatasetFormatError(f"{path}: unreadable numeric table")
