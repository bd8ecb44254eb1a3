"""`--registry` and `--partial-signers`: a key registry file (`iomt fleet add`) as a verify key.

Both are read before the broker or the state file is opened, so a missing or broken registry
is one line and leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iomt.errors import UsageError


def registry_keys(flag: str, path: Path | None) -> Any:
    """Signer id -> its public key from the registry at `path`, or None without the option."""
    if path is None:
        return None
    from aggregator.device_registry import DeviceRegistry, RegistryError

    try:
        return DeviceRegistry.load(path).verify_key()
    except RegistryError as exc:
        raise UsageError(f"{flag}: {exc}") from exc
