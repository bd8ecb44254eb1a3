"""`iomt keys`: make an Ed25519 key pair for signing bundles."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from iomt.environment import Environment, ExitStatus

HELP = "make an Ed25519 key pair that signs bundles (bundle_signing.key / .pub)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        help="directory for the pair (default: CONFIG_DIR/keys, the default key)",
    )
    parser.add_argument("--json", action="store_true", help="print paths and fingerprint as JSON")


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from bundle_format.signing import (
        PRIVATE_KEY_FILE,
        PUBLIC_KEY_FILE,
        public_key_fingerprint,
        write_key_pair,
    )
    from convert.signing_keys import default_key_dir
    from iomt.input_checks import check_key_directory

    directory = args.out or default_key_dir(env.config_dir)
    check_key_directory("--out", directory, (PRIVATE_KEY_FILE, PUBLIC_KEY_FILE))
    pair = write_key_pair(directory)
    fingerprint = public_key_fingerprint(pair.public_key)
    if args.json:
        document = {
            "private_key": str(pair.private_path),
            "public_key": str(pair.public_path),
            "fingerprint": fingerprint,
        }
        env.print(json.dumps(document, indent=2))
        return ExitStatus.SUCCESS
    env.print(f"private key {pair.private_path} (keep it secret; signs with `iomt convert --key`)")
    env.print(f"public key  {pair.public_path} (give it to devices; fingerprint {fingerprint})")
    return ExitStatus.SUCCESS
