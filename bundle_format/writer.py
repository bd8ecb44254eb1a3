"""Write a bundle directory: its files, the manifest, the signature and the signer's key.

The bundle is assembled in a temporary sibling directory and renamed into place, so a
half-written bundle is never seen under the final name. An existing bundle at the target is
replaced; any other non-empty directory there is refused rather than overwritten.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundle_format.errors import BundleWriteError
from bundle_format.manifest import manifest_to_bytes
from bundle_format.reader import MANIFEST_FILE, SIGNATURE_FILE, SIGNER_FILE
from bundle_format.signing import public_key_bytes, sign_bytes

RESERVED_NAMES = (MANIFEST_FILE, SIGNATURE_FILE, SIGNER_FILE)


def signed_bundle_files(
    files: Mapping[str, bytes], manifest: Mapping[str, Any], key: Ed25519PrivateKey
) -> dict[str, bytes]:
    """All files of the bundle, including `manifest.json`, `manifest.sig`, `signer.pub`."""
    clash = [name for name in files if name in RESERVED_NAMES]
    if clash:
        raise BundleWriteError(f"file name(s) reserved for the bundle itself: {clash}")
    manifest_bytes = manifest_to_bytes(manifest)
    return {
        **files,
        MANIFEST_FILE: manifest_bytes,
        SIGNATURE_FILE: sign_bytes(key, manifest_bytes),
        SIGNER_FILE: public_key_bytes(key),
    }


def write_bundle(
    out_dir: str | Path,
    files: Mapping[str, bytes],
    manifest: Mapping[str, Any],
    key: Ed25519PrivateKey,
) -> Path:
    """Sign `manifest` with `key` and write everything to `out_dir` atomically."""
    target = Path(out_dir)
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, content in signed_bundle_files(files, manifest, key).items():
            (staging / name).write_bytes(content)
        staging.chmod(0o755)  # mkdtemp makes it 0700; a bundle is meant to be read by services
        _swap_into_place(staging, target)
    except OSError as exc:
        raise BundleWriteError(f"cannot write bundle {target}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_replaceable(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise BundleWriteError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST_FILE).exists():
        raise BundleWriteError(f"{target} is a non-empty directory that is not a bundle")


def _swap_into_place(staging: Path, target: Path) -> None:
    retired = None
    if target.exists():
        retired = target.with_name(f".{target.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        target.rename(retired)
    staging.rename(target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
