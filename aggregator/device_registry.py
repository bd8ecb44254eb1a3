"""Which devices may send updates: device id -> Ed25519 public key, and whether it is revoked.

A small JSON file the operator edits with `iomt fleet add|revoke|list`; the aggregator reads it
at start-up (`--registry`) and refuses updates from unknown, revoked or forged devices.
Writes are atomic (temp file, fsync, rename) so a crash never leaves half a registry.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from fleet_protocol.errors import FederationError
from fleet_protocol.signing import public_key_from_bytes
from fleet_protocol.topics import validate_device_id
from fleet_protocol.wire import VerifyKey

REGISTRY_SCHEMA = 1
ED25519_PUBLIC_KEY_BYTES = 32


class RegistryError(FederationError):
    """The registry file or a registry operation is invalid."""

    reason = "registry"


@dataclass(frozen=True)
class DeviceEntry:
    """One registered device."""

    device_id: str
    public_key_hex: str
    revoked: bool = False
    added_unix: float = 0.0

    @property
    def public_key(self) -> bytes:
        return bytes.fromhex(self.public_key_hex)


def parse_public_key(text: str) -> bytes:
    """A raw 32-byte Ed25519 public key from hex (64 chars) text."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise RegistryError(f"public key is not hex: {text[:20]!r}") from exc
    if len(key) != ED25519_PUBLIC_KEY_BYTES:
        raise RegistryError(f"public key must be 32 bytes (64 hex chars), got {len(key)}")
    return key


class DeviceRegistry:
    """The registry file, loaded into memory; `save()` writes it back atomically."""

    def __init__(self, path: str | Path, entries: dict[str, DeviceEntry] | None = None) -> None:
        self.path = Path(path)
        self.entries: dict[str, DeviceEntry] = dict(entries or {})

    @classmethod
    def load(cls, path: str | Path, *, missing_ok: bool = False) -> DeviceRegistry:
        """Read a registry file (an empty one when missing and `missing_ok`)."""
        path = Path(path)
        if not path.exists():
            if missing_ok:
                return cls(path)
            raise RegistryError(f"no device registry at {path}")
        try:
            document = json.loads(path.read_text())
            entries = {e["device_id"]: DeviceEntry(**e) for e in document["devices"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"unreadable device registry {path}: {exc}") from exc
        return cls(path, entries)

    def save(self) -> None:
        document = {
            "schema": REGISTRY_SCHEMA,
            "devices": [asdict(self.entries[k]) for k in sorted(self.entries)],
        }
        _write_atomically(self.path, json.dumps(document, indent=2) + "\n")

    def add(
        self, device_id: str, public_key: bytes, now: float | None = None, *, replace: bool = False
    ) -> DeviceEntry:
        """Register a device (or un-revoke it); giving it another key needs `replace`, so a
        typo in a device id never silently takes over another device's identity."""
        validate_device_id(device_id)
        if len(public_key) != ED25519_PUBLIC_KEY_BYTES:
            raise RegistryError("public key must be 32 bytes")
        known = self.entries.get(device_id)
        if known is not None and known.public_key != public_key and not replace:
            raise RegistryError(f"{device_id} is registered with another key; --replace to re-key")
        entry = DeviceEntry(device_id, public_key.hex(), False, now or time.time())
        self.entries[device_id] = entry
        return entry

    def revoke(self, device_id: str) -> DeviceEntry:
        """Mark a device revoked; its updates are refused from now on."""
        entry = self.entries.get(device_id)
        if entry is None:
            raise RegistryError(f"device {device_id!r} is not registered")
        revoked = DeviceEntry(entry.device_id, entry.public_key_hex, True, entry.added_unix)
        self.entries[device_id] = revoked
        return revoked

    def trusted_keys(self) -> dict[str, bytes]:
        """Public keys of every device that is registered and not revoked."""
        return {d: e.public_key for d, e in self.entries.items() if not e.revoked}

    def verify_key(self) -> VerifyKey:
        """Signer id -> its key, for the trusted entries: devices' updates, or (a registry of
        `--partial-signers`) workers' and sites' partial sums. Unknown or revoked: None."""
        keys = {signer: public_key_from_bytes(key) for signer, key in self.trusted_keys().items()}
        return keys.get

    def status_of(self, device_id: str) -> str:
        """'trusted', 'revoked' or 'unknown'."""
        entry = self.entries.get(device_id)
        if entry is None:
            return "unknown"
        return "revoked" if entry.revoked else "trusted"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=path.name, dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
