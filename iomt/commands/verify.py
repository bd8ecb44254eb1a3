"""`iomt verify BUNDLE`: check a bundle's schema, signature and hashes, in one line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from iomt.environment import Environment, ExitStatus

HELP = "check a bundle's signature, schema and file hashes; say in one line what is wrong"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="bundle directory")
    parser.add_argument(
        "--trusted-key",
        type=Path,
        action="append",
        help="public key the signer must match (repeatable); default: any signer",
    )
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from bundle_format.errors import BundleError
    from bundle_format.reader import load_bundle

    try:
        bundle = load_bundle(args.bundle, trusted_keys=args.trusted_key)
    except BundleError as exc:
        _report(env, args, sound=False, line=f"{args.bundle}: REFUSED: {exc}")
        return ExitStatus.ERROR
    trust = "trusted signer" if args.trusted_key else "signer not checked against a trusted key"
    line = (
        f"{args.bundle}: sound (model {bundle.model_version}, schema {bundle.schema_version}, "
        f"{len(bundle.manifest['files'])} files, signer {bundle.signer_fingerprint}, {trust})"
    )
    _report(env, args, sound=True, line=line)
    return ExitStatus.SUCCESS


def _report(env: Environment, args: argparse.Namespace, sound: bool, line: str) -> None:
    if args.json:
        env.print(json.dumps({"bundle": str(args.bundle), "sound": sound, "message": line}))
    else:
        env.print(line)
