"""Which Ed25519 key signs a bundle: the one given, or a default made on first use.

The default key lives in the user's config directory (`<config_dir>/keys/`), is created the
first time a bundle is converted without `--key`, and is reused afterwards; devices trust its
public half (`bundle_signing.pub`). A new default key is made in memory and written only with
the first bundle it signs (`keep_signing_key`): a conversion that refuses writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundle_format.signing import (
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    generate_private_key,
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
    """Load `key_path`, or the default key in `config_dir`; a missing default is made in
    memory (`created`), for `keep_signing_key` to write once the bundle is written."""
    if key_path is not None:
        public = Path(key_path).with_suffix(".pub")
        return SigningKeySource(load_private_key(key_path), Path(key_path), public, False)
    directory = default_key_dir(config_dir)
    private_path, public_path = directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE
    if not private_path.exists():
        return SigningKeySource(generate_private_key(), private_path, public_path, True)
    return SigningKeySource(load_private_key(private_path), private_path, public_path, False)


def keep_signing_key(source: SigningKeySource) -> None:
    """Write a default key made by `resolve_signing_key` (no-op for a key read from a file)."""
    if source.created:
        write_key_pair(source.private_path.parent, source.key)
