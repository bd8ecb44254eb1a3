"""Ed25519 signatures over envelope bodies, and raw key (de)serialisation.

The signed bytes bind the protocol version and the signer id to the body, so a signature
cannot be replayed under another version or another identity.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fleet_protocol.errors import SignatureError

_sodium_open: Callable[[bytes, bytes], bytes] | None
try:  # libsodium: the aggregator extra (the edge extra stays cryptography-only)
    from nacl.bindings import crypto_sign_open as _sodium_open
    from nacl.exceptions import BadSignatureError
except ImportError:  # pragma: no cover - depends on the installed extra
    _sodium_open = None

SIGNATURE_BYTES = 64
_RAW = serialization.Encoding.Raw


def verify_with_openssl(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> None:
    """Ed25519 verification by cryptography (OpenSSL); raises `InvalidSignature`."""
    public_key.verify(signature, message)


def verify_with_sodium(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> None:
    """The same RFC 8032 check by libsodium (PyNaCl), ~1.7x faster; raises `InvalidSignature`.

    Imported once above: the two `from ... import`s inside the function cost ~1 µs per update."""
    if _sodium_open is None:
        raise ImportError("PyNaCl is not installed (the aggregator extra)")
    try:
        _sodium_open(signature + message, _raw_public_key(public_key))
    except BadSignatureError:
        raise InvalidSignature from None


_RAW_KEYS: dict[int, tuple[Ed25519PublicKey, bytes]] = {}  # id(key) -> (the key, its 32 bytes)
_MAX_RAW_KEYS = 100_000


def _raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    """A key's raw bytes, remembered per key object: a registry's keys verify every update
    (the entry holds the key itself, so its id cannot be reused while it is remembered)."""
    entry = _RAW_KEYS.get(id(public_key))
    if entry is not None and entry[0] is public_key:
        return entry[1]
    return _remember_raw(public_key, public_key_to_bytes(public_key))


def _remember_raw(public_key: Ed25519PublicKey, raw: bytes) -> bytes:
    if len(_RAW_KEYS) >= _MAX_RAW_KEYS:
        _RAW_KEYS.clear()
    _RAW_KEYS[id(public_key)] = (public_key, raw)
    return raw


def _fastest_verify() -> Callable[[Ed25519PublicKey, bytes, bytes], None]:
    """libsodium where installed (the aggregator extra: one verification per update), else OpenSSL
    (the edge extra, which stays cryptography-only)."""
    return verify_with_openssl if _sodium_open is None else verify_with_sodium


_verify = _fastest_verify()


def signed_bytes(version: int, signer: str, body: bytes) -> bytes:
    """The exact bytes a signature covers: context, version, signer id, body."""
    return b"iomt-fl\x00" + version.to_bytes(2, "big") + signer.encode() + b"\x00" + body


def sign_body(key: Ed25519PrivateKey, version: int, signer: str, body: bytes) -> bytes:
    """Sign an envelope body as `signer`."""
    return key.sign(signed_bytes(version, signer, body))


def verify_body(
    public_key: Ed25519PublicKey, version: int, signer: str, body: bytes, signature: bytes
) -> None:
    """Raise `SignatureError` unless `signature` is `signer`'s over this body."""
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(f"signature must be {SIGNATURE_BYTES} bytes, got {len(signature)}")
    try:
        _verify(public_key, signature, signed_bytes(version, signer, body))
    except InvalidSignature:
        raise SignatureError(f"signature of {signer!r} does not verify") from None


def generate_signing_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 key (device or aggregator identity)."""
    return Ed25519PrivateKey.generate()


def public_key_to_bytes(key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key."""
    return key.public_bytes(_RAW, serialization.PublicFormat.Raw)


def public_key_from_bytes(raw: bytes) -> Ed25519PublicKey:
    """Load a raw 32-byte public key; raise `SignatureError` if it is not one."""
    try:
        key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as error:
        raise SignatureError(f"invalid Ed25519 public key: {error}") from None
    _remember_raw(key, bytes(raw))  # a registry's keys: each verifies one update per round
    return key


def private_key_to_bytes(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte private seed (store it with 0600 permissions)."""
    return key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def private_key_from_bytes(raw: bytes) -> Ed25519PrivateKey:
    """Load a raw 32-byte private seed; raise `SignatureError` if it is not one."""
    try:
        return Ed25519PrivateKey.from_private_bytes(raw)
    except ValueError as error:
        raise SignatureError(f"invalid Ed25519 private key: {error}") from None
