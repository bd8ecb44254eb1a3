"""Which Ed25519 key signs a bundle: the one given, or a default made on first use.

The default key lives in the user's config directory (`<config_dir>/keys/`), is created the
first time a bundle is converted without `--key`, and is reused afterwards; devices trust its
public half (`bundle_signing.pub`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundle_format.signing import (
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    load_private_key,
    write_key_pair,
)

KEYS_SUBDIR = "keys"


@dataclass(frozen=True)
class SigningKeySource:
    """A loaded signing key, where it came from, and whether it was just created."""

    key: Ed25519PrivateKey
    private_path: Path
    public_path: Path
    created: bool


def default_key_dir(config_dir: Path) -> Path:
    """Directory of the default bundle signing key."""
    return Path(config_dir) / KEYS_SUBDIR


def resolve_signing_key(key_path: Path | None, config_dir: Path) -> SigningKeySource:
    """Load `key_path`, or the default key in `config_dir`, creating it when missing."""
    if key_path is not None:
        public = Path(key_path).with_suffix(".pub")
        return SigningKeySource(load_private_key(key_path), Path(key_path), public, False)
    directory = default_key_dir(config_dir)
    private_path = directory / PRIVATE_KEY_FILE
    created = not private_path.exists()
    if created:
        write_key_pair(directory)
    return SigningKeySource(
        load_private_key(private_path), private_path, directory / PUBLIC_KEY_FILE, created
    )
