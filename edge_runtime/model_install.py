"""Install a new head version atomically and keep the previous one for rollback.

Layout of the head directory:

    heads/head-<version>.npz      the installed versions (current and previous only)
    current.json                  {"current": {"version", "file"}, "previous": {...} | null}

Every file is written to a temporary name, fsynced, renamed into place, and the directory is
fsynced, so a crash at any instant leaves either the old pointer or the new one, each naming
a complete head file. The pointer is switched last; stale files are removed after it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
from numpy.typing import NDArray

from edge_runtime.errors import HeadError, InstallError
from edge_runtime.head import Head

POINTER_NAME = "current.json"
HEADS_DIR = "heads"
DEFAULT_ACTIVATIONS = ("relu", "softmax")
_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class HeadEntry(TypedDict):
    """One installed version in the pointer file."""

    version: str
    file: str


class HeadPointer(TypedDict):
    """`current.json`: the version in use and the one to roll back to."""

    current: HeadEntry
    previous: HeadEntry | None


@dataclass(frozen=True)
class InstalledHead:
    """The head in use and its version (the global model version it came from)."""

    version: str
    head: Head

    @property
    def weights(self) -> list[NDArray[np.float32]]:
        return self.head.weights


def install_head(
    directory: str | Path,
    version: str | int,
    weights: Head | Sequence[NDArray[np.floating]],
    activations: Sequence[str] | None = None,
) -> InstalledHead:
    """Make `version` current; the current one becomes `previous`, older ones are deleted.

    `activations` defaults to those of the installed head, else ("relu", "softmax").
    """
    root = Path(directory)
    name = _checked_version(version)
    head = weights if isinstance(weights, Head) else _head_with(root, weights, activations)
    (root / HEADS_DIR).mkdir(parents=True, exist_ok=True)
    _remove_temporaries(root)
    file_name = f"{HEADS_DIR}/head-{name}.npz"
    _write_atomic(root / file_name, head.to_npz_bytes())
    pointer = _read_pointer_or_none(root)
    current = pointer["current"] if pointer else None
    if pointer and current and current["version"] == name:
        previous = pointer["previous"]
    else:
        previous = current
    _write_pointer(root, {"version": name, "file": file_name}, previous)
    _remove_stale(root)
    return InstalledHead(name, head)


def current_head(directory: str | Path) -> InstalledHead | None:
    """The installed head, or None when nothing was ever installed."""
    root = Path(directory)
    pointer = _read_pointer(root)
    if pointer is None:
        return None
    return _load_entry(root, pointer["current"])


def previous_version(directory: str | Path) -> str | None:
    pointer = _read_pointer(Path(directory))
    previous = pointer["previous"] if pointer else None
    return None if previous is None else str(previous["version"])


def rollback(directory: str | Path) -> InstalledHead:
    """Make the previous version current again; the rolled-back version is removed."""
    root = Path(directory)
    pointer = _read_pointer(root)
    previous = pointer["previous"] if pointer else None
    if previous is None:
        raise InstallError(f"no previous head version to roll back to in {root}")
    installed = _load_entry(root, previous)
    _write_pointer(root, previous, None)
    _remove_stale(root)
    return installed


def _head_with(
    root: Path, weights: Sequence[NDArray[np.floating]], activations: Sequence[str] | None
) -> Head:
    if activations is None:
        try:
            installed = current_head(root)
        except InstallError:
            installed = None  # a damaged install must not block installing a good head
        activations = installed.head.activations if installed else DEFAULT_ACTIVATIONS
    try:
        return Head.from_weights(weights, activations)
    except HeadError as exc:
        raise InstallError(f"refusing to install head: {exc}") from exc


def _checked_version(version: str | int) -> str:
    name = str(version)
    if not _VERSION_PATTERN.match(name):
        raise InstallError(f"head version {name!r} must be 1-64 characters of [A-Za-z0-9._-]")
    return name


def _load_entry(root: Path, entry: HeadEntry) -> InstalledHead:
    try:
        return InstalledHead(str(entry["version"]), Head.from_npz(root / entry["file"]))
    except HeadError as exc:
        raise InstallError(f"installed head {entry.get('version')} is unreadable: {exc}") from exc


def _read_pointer(root: Path) -> HeadPointer | None:
    path = root / POINTER_NAME
    try:
        pointer = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InstallError(f"head pointer {path} is unreadable: {exc}") from exc
    if not isinstance(pointer, dict) or not _is_entry(pointer.get("current")):
        raise InstallError(f"head pointer {path} has no current version")
    previous = pointer.get("previous")
    return HeadPointer(
        current=pointer["current"], previous=previous if _is_entry(previous) else None
    )


def _is_entry(value: object) -> bool:
    return isinstance(value, dict) and isinstance(value.get("version"), str) \
        and isinstance(value.get("file"), str)  # fmt: skip


def _read_pointer_or_none(root: Path) -> HeadPointer | None:
    """The pointer, or None if it is damaged: a new install then starts a fresh history."""
    try:
        return _read_pointer(root)
    except InstallError:
        return None


def _write_pointer(root: Path, current: HeadEntry, previous: HeadEntry | None) -> None:
    text = json.dumps(HeadPointer(current=current, previous=previous), indent=1)
    _write_atomic(root / POINTER_NAME, text.encode())


def _write_atomic(path: Path, content: bytes) -> None:
    """tmp file, fsync, rename over the target, fsync the directory."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_directory(path.parent)
    except OSError as exc:
        raise InstallError(f"cannot write {path}: {exc.strerror}") from exc


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_temporaries(root: Path) -> None:
    for leftover in [*root.glob("*.tmp"), *(root / HEADS_DIR).glob("*.tmp")]:
        leftover.unlink(missing_ok=True)


def _remove_stale(root: Path) -> None:
    """Delete head files that neither the current nor the previous entry names."""
    pointer = _read_pointer_or_none(root)
    entries = (pointer["current"], pointer["previous"]) if pointer else ()
    keep = {entry["file"] for entry in entries if entry}
    for path in (root / HEADS_DIR).glob("head-*.npz"):
        if f"{HEADS_DIR}/{path.name}" not in keep:
            path.unlink(missing_ok=True)
