"""Checks a command makes at the door, before it reads much or writes anything.

A command that will refuse should refuse first: a NaN learning rate, a `--deadline inf`, an id
that is no topic level, an output folder it cannot write, a `--holdout` whose labels do not
match its windows or the model's classes. Each check raises `UsageError` with one line.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from iomt.errors import UsageError

MANIFEST_FILE = "manifest.json"


def check_number(flag: str, value: float | int | None, *, minimum: float = 0.0,
                 inclusive: bool = False, below: float | None = None) -> None:  # fmt: skip
    """`value` must be finite, above `minimum` (or equal when `inclusive`), below `below`."""
    if value is None:
        return
    if not math.isfinite(value):
        raise UsageError(f"{flag} must be a finite number, got {value}")
    low_ok = value >= minimum if inclusive else value > minimum
    if not low_ok:
        relation = ">=" if inclusive else ">"
        raise UsageError(f"{flag} must be {relation} {minimum:g}, got {value}")
    if below is not None and value >= below:
        raise UsageError(f"{flag} must be < {below:g}, got {value}")


def check_ids(fleet: str | None = None, device_id: str | None = None) -> None:
    """Fleet and device ids must be safe topic levels (no `#`, `+`, `/`, ...)."""
    from fleet_protocol.errors import TopicError
    from fleet_protocol.topics import validate_device_id, validate_fleet

    try:
        if fleet is not None:
            validate_fleet(fleet)
        if device_id is not None:
            validate_device_id(device_id)
    except TopicError as exc:
        raise UsageError(str(exc)) from exc


def _writable_ancestor(path: Path) -> bool:
    """Whether the nearest existing ancestor of `path` lets us create it."""
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def check_bundle_out(flag: str, path: Path) -> None:
    """A bundle may be written to a new, empty or bundle directory whose parent is writable."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST_FILE).exists():
        raise UsageError(f"{flag} {path} is a non-empty directory that is not a bundle")
    if not _writable_ancestor(path):
        raise UsageError(f"{flag} {path}: its parent directory is not writable")


def check_appendable(flag: str, path: Path | None) -> None:
    """A file we will append to later must be appendable now."""
    if path is None:
        return
    if path.exists() and (not path.is_file() or not os.access(path, os.W_OK)):
        raise UsageError(f"{flag} {path} is not a writable file")
    if not path.parent.is_dir():
        raise UsageError(f"{flag} {path}: no directory {path.parent}")
    if not path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: directory {path.parent} is not writable")


def check_window_dataset(flag: str, path: Path | None, num_classes: int) -> None:
    """A labelled window dataset: one label per window, every label a class of the model."""
    if path is None:
        return
    from edge_runtime.device_loop import check_labelled_windows
    from edge_runtime.errors import EdgeRuntimeError

    try:
        check_labelled_windows(flag, path, num_classes)
    except EdgeRuntimeError as exc:
        raise UsageError(str(exc)) from exc


def check_codec(flag: str, text: str) -> str:
    """`--codec` must be `int8`, `topk:0.05+zstd`, ...; returns its canonical form."""
    from fleet_protocol.errors import CodecError
    from fleet_protocol.update_encoding import parse_update_encoding

    try:
        return parse_update_encoding(text).to_text()
    except CodecError as error:
        raise UsageError(f"{flag}: {error}") from None


def check_dataset_file(flag: str, path: Path | None) -> None:
    """A window-dataset `.npz` given on the command line exists and has every array (read from
    its index only: before TensorFlow is imported or anything is written)."""
    if path is None:
        return
    from training.datasets.errors import DatasetFileError
    from training.datasets.window_dataset import check_window_dataset_file

    try:
        check_window_dataset_file(path)
    except DatasetFileError as exc:
        raise UsageError(f"{flag} {exc}") from exc


def check_run_dir(path: Path) -> None:
    """A training run directory (`runs/NAME`) with every file `iomt train` writes."""
    from training.run_artifacts import check_run_directory

    try:
        check_run_directory(path)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from exc


def check_key_directory(flag: str, path: Path, names: tuple[str, ...]) -> None:
    """A directory to write a key pair into: a directory (or new), holding none of `names`."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} exists and is not a directory")
    taken = [name for name in names if (path / name).exists()]
    if taken:
        raise UsageError(f"{flag} {path} already holds {', '.join(taken)}; not overwriting a key")
    if not _writable_ancestor(path / names[0]):
        raise UsageError(f"{flag} {path}: not writable")


def check_port(flag: str, port: int | None, *, allow_zero: bool = False) -> None:
    """A TCP port: 1-65535 (0 = pick a free one, where the command allows it)."""
    if port is None or (allow_zero and port == 0) or 1 <= port <= 65535:
        return
    raise UsageError(f"{flag} {port}: a TCP port is 1-65535" + (" (or 0)" if allow_zero else ""))


def check_state_file(path: Path) -> None:
    """An aggregator state file that exists (opening a missing one would create it)."""
    if not path.is_file():
        raise UsageError(f"no state file {path}")
