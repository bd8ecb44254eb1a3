"""Ed25519 keys and signatures for bundles, usable on a device without TensorFlow.

A bundle's `manifest.sig` is the Ed25519 signature of the exact `manifest.json` bytes and
`signer.pub` is the signer's raw 32-byte public key (docs/architecture.md). Private keys are
stored as the raw 32-byte seed, public keys as the raw 32 bytes; PEM files are accepted on read
so keys made with `openssl genpkey -algorithm ed25519` work too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from bundle_format.errors import BundleError

KEY_BYTES = 32
SIGNATURE_BYTES = 64
PRIVATE_KEY_FILE = "bundle_signing.key"
PUBLIC_KEY_FILE = "bundle_signing.pub"
_RAW = serialization.Encoding.Raw


class SigningKeyError(BundleError):
    """A key file is missing or is not an Ed25519 key."""


class SignatureMismatchError(BundleError):
    """A signature does not verify under the given public key."""


@dataclass(frozen=True)
class KeyPair:
    """Where `write_key_pair` put the private and public key files."""

    private_path: Path
    public_path: Path
    public_key: bytes


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 signing key."""
    return Ed25519PrivateKey.generate()


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """Raw 32-byte public key of a private or public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(_RAW, serialization.PublicFormat.Raw)


def private_key_bytes(key: Ed25519PrivateKey) -> bytes:
    """Raw 32-byte private seed (keep it 0600)."""
    return key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def public_key_fingerprint(raw_public_key: bytes) -> str:
    """Short hex id of a public key for messages (first 8 bytes of its sha256)."""
    import hashlib

    return hashlib.sha256(raw_public_key).hexdigest()[:16]


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The public key as PEM (SubjectPublicKeyInfo): the one key file format of every tool."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_key_pair(directory: str | Path, key: Ed25519PrivateKey | None = None) -> KeyPair:
    """Write `bundle_signing.key` (PEM, 0600) and `bundle_signing.pub` (PEM); never overwrite.

    PEM names its key type, so a tool given the wrong kind of key refuses it in one line
    (older raw 32-byte files are still read).
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    private_path, public_path = root / PRIVATE_KEY_FILE, root / PUBLIC_KEY_FILE
    if private_path.exists():
        raise SigningKeyError(f"{private_path} already exists; not overwriting a signing key")
    key = key or generate_private_key()
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(public_key_pem(key))
    return KeyPair(private_path, public_path, public_key_bytes(key))


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Read a raw 32-byte seed or a PEM private key."""
    content = _read_key_file(path)
    try:
        if len(content) == KEY_BYTES:
            return Ed25519PrivateKey.from_private_bytes(content)
        key = serialization.load_pem_private_key(content, password=None)
    except ValueError as exc:
        raise SigningKeyError(f"{path} is not an Ed25519 private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key_bytes(path: str | Path) -> bytes:
    """Read a raw 32-byte or PEM public key file and return the raw 32 bytes."""
    content = _read_key_file(path)
    if len(content) == KEY_BYTES:
        return content
    try:
        key = serialization.load_pem_public_key(content)
    except ValueError as exc:
        raise SigningKeyError(f"{path} is not an Ed25519 public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 public key")
    return public_key_bytes(key)


def sign_bytes(key: Ed25519PrivateKey, content: bytes) -> bytes:
    """64-byte Ed25519 signature of `content`."""
    return key.sign(content)


def verify_bytes(raw_public_key: bytes, content: bytes, signature: bytes) -> None:
    """Raise `SignatureMismatchError` unless `signature` is the key's signature of `content`."""
    if len(signature) != SIGNATURE_BYTES:
        size = len(signature)
        raise SignatureMismatchError(f"signature is {size} bytes, expected {SIGNATURE_BYTES}")
    try:
        public = Ed25519PublicKey.from_public_bytes(raw_public_key)
    except ValueError:
        raise SignatureMismatchError("signer key is not a 32-byte Ed25519 public key") from None
    try:
        public.verify(signature, content)
    except InvalidSignature:
        message = "signature does not verify: manifest altered or signed by another key"
        raise SignatureMismatchError(message) from None


def _read_key_file(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read key {path}: {exc.strerror}") from None
