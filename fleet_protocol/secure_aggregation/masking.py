"""Key agreement (X25519 + HKDF-SHA256), the mask PRG (ChaCha20) and share encryption (AES-GCM).

Both ends of a pair derive the same 32-byte seed from their own private key and the other's
public key; `context` (fleet, round) separates rounds, so masks never repeat across rounds.
"""

from __future__ import annotations

import os

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.secure_aggregation.fixed_point import Vector

SEED_BYTES = 32
_NONCE = b"\x00" * 16  # each seed drives exactly one keystream


def new_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_bytes(key: X25519PrivateKey) -> bytes:
    """Raw 32-byte public key."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def private_bytes(key: X25519PrivateKey) -> bytes:
    """Raw 32-byte private key (what gets Shamir-shared)."""
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def private_from_bytes(raw: bytes) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(raw)


def agree(own: X25519PrivateKey, peer_public: bytes, purpose: bytes, context: bytes) -> bytes:
    """The pair's shared 32-byte key for `purpose` in `context` (same on both ends)."""
    try:
        shared = own.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:
        raise SecureAggregationError(f"bad X25519 public key: {exc}") from None
    kdf = HKDF(hashes.SHA256(), SEED_BYTES, salt=None, info=b"iomt-secagg/" + purpose + context)
    return kdf.derive(shared)


def prg_mask(seed: bytes, length: int) -> Vector:
    """`length` pseudo-random uint32 ring elements from a 32-byte seed (ChaCha20 keystream)."""
    encryptor = Cipher(algorithms.ChaCha20(seed, _NONCE), mode=None).encryptor()
    stream = encryptor.update(b"\x00" * (4 * length))
    return np.frombuffer(stream, dtype="<u4").astype(np.uint32)


def new_seed() -> bytes:
    return os.urandom(SEED_BYTES)


def encrypt_for(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """AES-256-GCM with a random nonce; `associated` binds sender, receiver and round."""
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def decrypt_from(key: bytes, ciphertext: bytes, associated: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(ciphertext[:12], ciphertext[12:], associated)
    except (InvalidTag, ValueError):
        raise SecureAggregationError("an encrypted share does not decrypt") from None
