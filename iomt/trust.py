"""Which bundle signers a command trusts: `--trusted-key FILE` (repeatable) or the trust file.

Set once per machine: `CONFIG_DIR/trusted-signers` lists one signer per line, either the path
of a public key file (`iomt keys` writes `bundle_signing.pub`) or its raw key as 64 hex digits;
`#` starts a comment. `--trusted-key` on the command line replaces the file. With neither, a
bundle's signature is still checked, but against its own `signer.pub` (integrity only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from iomt.environment import Environment
from iomt.errors import UsageError

TRUST_FILE = "trusted-signers"


def add_trust_arguments(parser: argparse.ArgumentParser) -> None:
    """`--trusted-key FILE`, repeatable."""
    parser.add_argument(
        "--trusted-key",
        type=Path,
        action="append",
        metavar="FILE",
        help="public key the bundle's signer must match (repeatable; default: the trust file "
        f"CONFIG_DIR/{TRUST_FILE} if it exists)",
    )


def trusted_keys(env: Environment, args: argparse.Namespace) -> tuple[bytes, ...] | None:
    """The raw signer keys to require, or None when no trust is configured."""
    from bundle_format.signing import SigningKeyError, load_public_key_bytes

    paths: list[Path] | None = getattr(args, "trusted_key", None)
    try:
        if paths:
            return tuple(load_public_key_bytes(path) for path in paths)
        trust_file = env.config_dir / TRUST_FILE
        return _read_trust_file(trust_file) if trust_file.is_file() else None
    except (SigningKeyError, OSError) as exc:
        raise UsageError(f"--trusted-key: {exc}") from exc


def _read_trust_file(path: Path) -> tuple[bytes, ...]:
    from bundle_format.signing import load_public_key_bytes

    keys: list[bytes] = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if len(line) == 64 and all(c in "0123456789abcdefABCDEF" for c in line):
            keys.append(bytes.fromhex(line))
        else:
            keys.append(load_public_key_bytes(Path(line).expanduser()))
    if not keys:
        raise UsageError(f"trust file {path} names no signer")
    return tuple(keys)
