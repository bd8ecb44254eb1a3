"""`iomt fleet add|revoke|list --registry F`: the devices the aggregator trusts; `status`: how
every device is doing, from the aggregator's state file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError
from iomt.input_checks import check_state_file

if TYPE_CHECKING:
    from aggregator.device_registry import DeviceRegistry

HELP = "manage the device registry (device id -> Ed25519 public key, revoked flag)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="fleet_action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="register a device and its public key")
    add.add_argument("device_id", help="the device's id")
    key = add.add_mutually_exclusive_group(required=True)
    key.add_argument("--public-key", help="64 hex chars (printed by `iomt edge keygen`)")
    key.add_argument(
        "--public-key-file", type=Path, help="Ed25519 public key file: PEM, raw 32 bytes or hex"
    )
    add.add_argument(
        "--replace", action="store_true", help="allow giving a registered device a new key"
    )
    revoke = actions.add_parser("revoke", help="refuse a device's updates from now on")
    revoke.add_argument("device_id", help="the device's id")
    listing = actions.add_parser("list", help="show registered devices")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    for sub in (add, revoke, listing):
        sub.add_argument("--registry", type=Path, required=True, help="registry JSON file")
    status = actions.add_parser(
        "status", help="every device: online, last seen, version, last round, rejections, health"
    )
    status.add_argument("--state", type=Path, required=True, help="the aggregator's state file")
    status.add_argument("--registry", type=Path, help="registry JSON file (adds trust state)")
    status.add_argument("--json", action="store_true", help="machine-readable output")


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from aggregator.device_registry import DeviceRegistry, RegistryError, parse_public_key

    if args.fleet_action == "status":
        return _status(env, args)
    try:
        registry = DeviceRegistry.load(args.registry, missing_ok=args.fleet_action == "add")
        if args.fleet_action == "add":
            key = (parse_public_key(args.public_key) if args.public_key
                   else _key_from_file(args.public_key_file))  # fmt: skip
            entry = registry.add(args.device_id, key, replace=args.replace)
            registry.save()
            env.print(f"added {entry.device_id} {entry.public_key_hex}")
        elif args.fleet_action == "revoke":
            registry.revoke(args.device_id)
            registry.save()
            env.print(f"revoked {args.device_id}")
        else:
            _print_list(env, registry, args.json)
    except BrokenPipeError:
        raise  # the reader of our output is gone: not the user's mistake
    except (RegistryError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    return ExitStatus.SUCCESS


def _key_from_file(path: Path) -> bytes:
    """A public key file as `iomt keys` (PEM), older tools (raw) or `edge keygen` (hex) wrote it."""
    from aggregator.device_registry import RegistryError, parse_public_key
    from bundle_format.signing import SigningKeyError, load_public_key_bytes

    content = path.read_bytes()
    if content.startswith(b"-----BEGIN") or len(content) == 32:
        try:
            return load_public_key_bytes(path)
        except SigningKeyError as exc:
            raise RegistryError(str(exc)) from exc
    try:
        return parse_public_key(content.decode("ascii"))
    except UnicodeDecodeError:
        raise RegistryError(f"{path} is no Ed25519 public key (PEM, raw or hex)") from None


def _print_list(env: Environment, registry: DeviceRegistry, as_json: bool) -> None:
    entries = sorted(registry.entries.values(), key=lambda e: e.device_id)
    if as_json:
        rows = [{"device_id": e.device_id, "public_key": e.public_key_hex, "revoked": e.revoked}
                for e in entries]  # fmt: skip
        env.print(json.dumps(rows))
        return
    for e in entries:
        state = "revoked" if e.revoked else "trusted"
        env.print(f"{e.device_id:24s} {state:8s} {e.public_key_hex}")


def _status(env: Environment, args: argparse.Namespace) -> ExitStatus:
    import time

    from aggregator.device_registry import DeviceRegistry, RegistryError
    from aggregator.fleet_view import fleet_rows, format_row
    from aggregator.state_store import StateStore

    check_state_file(args.state)
    try:
        registered = DeviceRegistry.load(args.registry).entries if args.registry else None
    except RegistryError as exc:
        raise UsageError(str(exc)) from exc
    with StateStore(args.state) as store:
        rows = fleet_rows(store.devices(), registered)
    if args.json:
        env.print(json.dumps([row.to_dict() for row in rows]))
        return ExitStatus.SUCCESS
    now = time.time()
    for row in rows:
        env.print(format_row(row, now))
    if not rows:
        env.print("no devices heard of yet")
    return ExitStatus.SUCCESS
