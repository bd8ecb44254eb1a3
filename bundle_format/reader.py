"""Read and verify a deployable bundle on the device (no TensorFlow).

`load_bundle` checks, in order: the manifest parses and its `schema_version` is one this code
knows; the signature in `manifest.sig` verifies over the exact `manifest.json` bytes under
`signer.pub`, and that key is trusted when `trusted_keys` is given; every file listed in
`manifest["files"]` exists with the recorded size and sha256. Any failure is a one-line
`BundleError`. Only then are paths handed out, so nothing unverified is ever loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bundle_format.errors import BundleError
from bundle_format.signing import load_public_key_bytes, public_key_fingerprint, verify_bytes

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
SIGNER_FILE = "signer.pub"
MODEL_FILE = "model.int8.tflite"
BACKBONE_FILE = "backbone.int8.tflite"
HEAD_FILE = "head.npz"
PARITY_FILE = "parity.json"
C_HEADER_FILE = "model_data.h"
C_SOURCE_FILE = "model_data.cc"

REQUIRED_FIELDS = (
    "schema_version",
    "labels",
    "channels",
    "sample_rate_hz",
    "window_length",
    "normalisation",
    "models",
    "files",
    "model_version",
)
_CHUNK = 1 << 16

TrustedKey = bytes | str | Path


@dataclass(frozen=True)
class TensorQuantisation:
    """How one model input or output is quantised: real = scale * (q - zero_point)."""

    dtype: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> TensorQuantisation:
        return cls(
            dtype=str(entry["dtype"]),
            shape=tuple(int(d) for d in entry["shape"]),
            scale=float(entry["scale"]),
            zero_point=int(entry["zero_point"]),
        )

    def to_manifest(self) -> dict[str, Any]:
        """The manifest entry `from_manifest` reads back."""
        return {
            "dtype": self.dtype,
            "shape": list(self.shape),
            "scale": self.scale,
            "zero_point": self.zero_point,
        }


@dataclass(frozen=True)
class Bundle:
    """A verified bundle directory: its manifest and the paths of its files."""

    path: Path
    manifest: dict[str, Any] = field(compare=False)
    signer_public_key: bytes

    @property
    def schema_version(self) -> int:
        return int(self.manifest["schema_version"])

    @property
    def model_version(self) -> str:
        return str(self.manifest["model_version"])

    @property
    def task(self) -> str:
        return str(self.manifest.get("task", ""))

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(str(label) for label in self.manifest["labels"])

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(str(channel) for channel in self.manifest["channels"])

    @property
    def sample_rate_hz(self) -> float:
        return float(self.manifest["sample_rate_hz"])

    @property
    def window_length(self) -> int:
        return int(self.manifest["window_length"])

    @property
    def stride(self) -> int:
        return int(self.manifest.get("stride") or self.window_length)

    @property
    def mean(self) -> NDArray[np.float32]:
        return np.asarray(self.manifest["normalisation"]["mean"], dtype=np.float32)

    @property
    def std(self) -> NDArray[np.float32]:
        return np.asarray(self.manifest["normalisation"]["std"], dtype=np.float32)

    @property
    def embedding_size(self) -> int:
        return int(self.manifest["embedding_size"])

    @property
    def signer_fingerprint(self) -> str:
        return public_key_fingerprint(self.signer_public_key)

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def backbone_path(self) -> Path:
        return self.path / BACKBONE_FILE

    @property
    def head_path(self) -> Path:
        return self.path / HEAD_FILE

    @property
    def board(self) -> str | None:
        mcu = self.manifest.get("mcu")
        return str(mcu["board"]) if mcu else None

    @property
    def arena_bytes(self) -> int | None:
        """Measured TFLM arena for the MCU board, None for a Pi bundle."""
        mcu = self.manifest.get("mcu")
        return int(mcu["arena_bytes"]) if mcu else None

    def quantisation(self, model: str, which: str) -> TensorQuantisation:
        """`model` is "model" or "backbone", `which` is "input" or "output"."""
        return TensorQuantisation.from_manifest(self.manifest["models"][model][which])

    def normalise(self, windows: NDArray[np.floating]) -> NDArray[np.float32]:
        """Sensor-unit windows [..., T, C] -> the normalised float32 the models take."""
        std = np.where(self.std == 0, 1.0, self.std)
        return ((np.asarray(windows, dtype=np.float32) - self.mean) / std).astype(np.float32)

    def file_path(self, name: str) -> Path:
        """Path of a verified file of the bundle; `BundleError` if it is not listed."""
        if name not in self.manifest["files"]:
            raise BundleError(f"bundle {self.path} has no {name}")
        return self.path / name

    def read_bytes(self, name: str) -> bytes:
        return self.file_path(name).read_bytes()

    @property
    def verified_head_path(self) -> Path:
        """The float head's `.npz` (the weights devices fine-tune), checked to be listed."""
        return self.file_path(HEAD_FILE)


def load_bundle(path: str | Path, trusted_keys: Iterable[TrustedKey] | None = None) -> Bundle:
    """Verify schema, signature and hashes of a bundle directory and return it.

    `trusted_keys` holds raw 32-byte public keys or paths of key files; when given, the
    bundle's signer must be one of them. Without it, the signature is still checked against
    the bundle's own `signer.pub` (integrity, not authenticity).
    """
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"bundle {root} is not a directory")
    manifest_bytes = _read(root, MANIFEST_FILE)
    manifest = parse_manifest(manifest_bytes, root)
    signer = _read(root, SIGNER_FILE)
    _check_trusted(signer, trusted_keys, root)
    verify_bytes(signer, manifest_bytes, _read(root, SIGNATURE_FILE))
    verify_files(root, manifest["files"])
    return Bundle(root, manifest, signer)


def parse_manifest(content: bytes, root: Path | str = "<bundle>") -> dict[str, Any]:
    """Parse manifest bytes and check schema version and required fields."""
    try:
        manifest = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{root}/{MANIFEST_FILE} is not JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{root}/{MANIFEST_FILE} is not a JSON object")
    version = manifest.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)
        raise BundleError(f"unknown bundle schema_version {version!r} (supported: {supported})")
    missing = [name for name in REQUIRED_FIELDS if name not in manifest]
    if missing:
        raise BundleError(f"manifest misses field(s): {', '.join(missing)}")
    if not isinstance(manifest["files"], dict) or not manifest["files"]:
        raise BundleError("manifest lists no files")
    return manifest


def verify_files(root: Path, files: dict[str, Any]) -> None:
    """Raise `BundleError` at the first listed file whose size or sha256 differs."""
    for name, entry in sorted(files.items()):
        file_path = root / name
        if Path(name).name != name or name in (MANIFEST_FILE, SIGNATURE_FILE):
            raise BundleError(f"manifest lists an invalid file name {name!r}")
        if not file_path.is_file():
            raise BundleError(f"bundle file {name} is missing")
        size = file_path.stat().st_size
        if not isinstance(entry, dict) or "bytes" not in entry or "sha256" not in entry:
            raise BundleError(f"manifest entry of {name} lacks bytes/sha256")
        if size != int(entry["bytes"]):
            raise BundleError(f"bundle file {name} is {size} bytes, manifest says {entry['bytes']}")
        if sha256_file(file_path) != entry["sha256"]:
            raise BundleError(f"bundle file {name} does not match its sha256 (altered)")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_trusted(signer: bytes, trusted_keys: Iterable[TrustedKey] | None, root: Path) -> None:
    if trusted_keys is None:
        return
    trusted = {k if isinstance(k, bytes) else load_public_key_bytes(k) for k in trusted_keys}
    if signer not in trusted:
        raise BundleError(
            f"bundle {root} is signed by untrusted key {public_key_fingerprint(signer)}"
        )


def _read(root: Path, name: str) -> bytes:
    try:
        return (root / name).read_bytes()
    except FileNotFoundError:
        raise BundleError(f"bundle {root} has no {name}") from None
    except OSError as exc:
        raise BundleError(f"cannot read {root / name}: {exc.strerror}") from None
