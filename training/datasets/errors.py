"""Dataset errors: every one carries a one-line message naming the file and line or key."""

from __future__ import annotations


class DatasetError(Exception):
    """Base class for anything that goes wrong while preparing or reading a dataset."""


class DatasetFormatError(DatasetError):
    """A file is malformed, truncated or mis-structured (the message names file and line/key)."""


class DatasetFileError(DatasetError):
    """A window-dataset `.npz` is missing, unreadable or inconsistent."""


class UnknownSourceError(DatasetError):
    """The source name is not in `SOURCES`."""


class MissingPathError(DatasetError):
    """A file-based source was asked for without a path."""
