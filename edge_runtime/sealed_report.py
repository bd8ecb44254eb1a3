"""Encryption of a report to a clinician's X25519 public key: HPKE (RFC 9180), not hand-rolled.

`cryptography`'s HPKE in base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
AES-256-GCM: a fresh encapsulated key per report, the key schedule and nonce of the standard.
Layout:

    b"IOMT-REPORT\\x02" | recipient fingerprint (8) | HPKE enc (32) | ciphertext + tag

The header (magic and fingerprint) is HPKE's `info`, so changing any byte of it makes the report
fail to decrypt, like a change to the ciphertext. The fingerprint lets a wrong key fail with a
clear message instead of a bare tag mismatch. Version 1 (a hand-written ECIES) is refused. Inside
the sealed box the report is signed by the device's Ed25519 key (`sign_document`), so the
clinician also learns which device made it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from edge_runtime.errors import EdgeRuntimeError

MAGIC = b"IOMT-REPORT\x02"
_OLD_MAGIC = b"IOMT-REPORT\x01"
_HEADER_BYTES = len(MAGIC) + 8
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_MIN_SEALED_BYTES = _HEADER_BYTES + 32 + 16  # encapsulated key and tag
PRIVATE_FILE, PUBLIC_FILE = "clinician.key", "clinician.pub"


class ReportCryptoError(EdgeRuntimeError):
    """A key or a sealed report cannot be used (wrong key, tampered, not a report)."""


def fingerprint(public_key: X25519PublicKey) -> bytes:
    """First 8 bytes of the SHA-256 of the raw public key."""
    return hashlib.sha256(_raw_public(public_key)).digest()[:8]


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def seal(plaintext: bytes, recipient: X25519PublicKey) -> bytes:
    """Encrypt `plaintext` so only the holder of the recipient's private key can read it."""
    header = MAGIC + fingerprint(recipient)
    return header + _SUITE.encrypt(plaintext, recipient, info=header)


def open_sealed(blob: bytes, private_key: X25519PrivateKey) -> bytes:
    """Decrypt a sealed report; raise `ReportCryptoError` with one line if it cannot be."""
    if blob.startswith(_OLD_MAGIC):
        raise ReportCryptoError("report was sealed by an older release (format 1): not readable")
    if len(blob) < _MIN_SEALED_BYTES or not blob.startswith(MAGIC):
        raise ReportCryptoError("not an encrypted iomt report")
    header = blob[:_HEADER_BYTES]
    sealed_for, own = header[len(MAGIC) :], fingerprint(private_key.public_key())
    if sealed_for != own:
        raise ReportCryptoError(
            f"report is encrypted for key {sealed_for.hex()}, not for this key ({own.hex()})"
        )
    try:
        return _SUITE.decrypt(blob[_HEADER_BYTES:], private_key, info=header)
    except InvalidTag:
        raise ReportCryptoError("report does not decrypt: it was altered or truncated") from None


@dataclass(frozen=True)
class ClinicianKeyFiles:
    """Where `write_clinician_keys` put the pair."""

    private_path: Path
    public_path: Path


def write_clinician_keys(directory: Path) -> ClinicianKeyFiles:
    """A new X25519 pair as PEM: `clinician.key` (0600) and `clinician.pub`; never overwrite."""
    files = ClinicianKeyFiles(directory / PRIVATE_FILE, directory / PUBLIC_FILE)
    if files.private_path.exists() or files.public_path.exists():
        raise ReportCryptoError(f"{files.private_path} exists; refusing to overwrite a key")
    key = X25519PrivateKey.generate()
    directory.mkdir(parents=True, exist_ok=True)
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())  # fmt: skip
    descriptor = os.open(files.private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(private_pem)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, spki)
    files.public_path.write_bytes(public_pem)
    return files


def load_public_key(path: Path) -> X25519PublicKey:
    """An X25519 public key from PEM (raw 32 bytes are refused: an Ed25519 key looks the same)."""
    data = _read(path)
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise ReportCryptoError(f"{path} is not a PEM public key (`iomt report keygen` writes"
                                " clinician.pub)") from None  # fmt: skip
    if not isinstance(key, X25519PublicKey):
        raise ReportCryptoError(f"{path} is not an X25519 public key")
    return key


def load_private_key(path: Path) -> X25519PrivateKey:
    """An X25519 private key from PEM or 32 raw bytes."""
    data = _read(path)
    try:
        key = (X25519PrivateKey.from_private_bytes(data) if len(data) == 32
               else serialization.load_pem_private_key(data, password=None))  # fmt: skip
    except (ValueError, TypeError) as exc:
        raise ReportCryptoError(f"{path} is not a private key: {exc}") from None
    if not isinstance(key, X25519PrivateKey):
        raise ReportCryptoError(f"{path} is not an X25519 private key")
    return key


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ReportCryptoError(f"cannot read {path}: {exc.strerror}") from None


SIGNED_MAGIC = b"IOMT-SIGNED-REPORT\x01"


@dataclass(frozen=True)
class SignedDocument:
    """A report's bytes and the raw Ed25519 public key of the device that signed them."""

    document: bytes
    signer_public_key: bytes


def sign_document(document: bytes, device_key: Ed25519PrivateKey) -> bytes:
    """Prefix the device's public key and its signature (sealed together with the report)."""
    public = device_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)  # fmt: skip
    signature = device_key.sign(SIGNED_MAGIC + public + document)
    return SIGNED_MAGIC + public + signature + document


def verify_document(signed: bytes, expected_public_key: bytes | None = None) -> SignedDocument:
    """Check the device signature inside an opened report (and, if given, whose it is)."""
    head = len(SIGNED_MAGIC)
    if not signed.startswith(SIGNED_MAGIC) or len(signed) < head + 96:
        raise ReportCryptoError("report carries no device signature")
    public, signature = signed[head : head + 32], signed[head + 32 : head + 96]
    document = signed[head + 96 :]
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(
            signature, SIGNED_MAGIC + public + document
        )
    except InvalidSignature:
        raise ReportCryptoError("device signature of the report does not verify") from None
    if expected_public_key is not None and public != expected_public_key:
        raise ReportCryptoError(f"report signed by device key {public.hex()[:16]}..., not yours")
    return SignedDocument(document, public)
