"""`iomt aggregator status|export|rollback|promote`: read or amend a state file, no broker.

`status` lists rounds, versions, privacy spent and held-back candidates; `export` writes a
version as a signed bundle; `rollback` and `promote` record an earlier version or a held-back
candidate as the newest, which the aggregator publishes when it next starts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from iomt.commands.aggregator_options import bundle_parts
from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError
from iomt.input_checks import check_state_file
from iomt.privacy_options import privacy_lines, privacy_status


def add_state_actions(parser: argparse.ArgumentParser) -> None:
    """`status`, `export`, `rollback` and `promote`: actions on a state file, no broker."""
    actions = parser.add_subparsers(dest="aggregator_action", metavar="ACTION")
    status = actions.add_parser("status", help="rounds and versions in a state file")
    status.add_argument("--state", type=Path, required=True, help="the state file")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    export = actions.add_parser("export", help="write a global version as a bundle")
    export.add_argument("--state", type=Path, required=True, help="the state file")
    export.add_argument("--version", type=int, help="global version (default: latest)")
    export.add_argument("--bundle", type=Path, required=True, help="bundle to copy the rest from")
    export.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    export.add_argument(
        "--signing-key", type=Path, help="Ed25519 key to sign (default: a new one, said so)"
    )
    rollback = actions.add_parser(
        "rollback", help="publish an earlier version again as the newest (devices follow)"
    )
    rollback.add_argument("target_version", metavar="VERSION", type=int, help="version to restore")
    rollback.add_argument("--state", type=Path, required=True, help="the aggregator's state file")
    promote = actions.add_parser(
        "promote", help="publish a head the promotion gate held back, as the newest version"
    )
    promote.add_argument(
        "round_id", metavar="ROUND", type=int, help="the held_back round whose candidate to publish"
    )
    promote.add_argument("--state", type=Path, required=True, help="the aggregator's state file")


def run_state_action(env: Environment, args: argparse.Namespace) -> ExitStatus:
    """Carry out the chosen action (`args.aggregator_action`)."""
    actions = {"status": _status, "export": _export, "rollback": _rollback, "promote": _promote}
    return actions[args.aggregator_action](env, args)


def _status(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from aggregator.state_store import StateStore

    check_state_file(args.state)
    with StateStore(args.state) as store:
        rounds = [r.__dict__ for r in store.rounds()]
        versions = [v.__dict__ for v in store.versions()]
        privacy = privacy_status(store.privacy.devices(), store.privacy.versions())
        candidates = store.candidates()
    if args.json:
        document = {
            "rounds": rounds,
            "versions": versions,
            "privacy": privacy,
            "candidates": [{"round": r, "accuracy": a} for r, a in candidates.items()],
        }
        env.print(json.dumps(document, default=str))  # fmt: skip
        return ExitStatus.SUCCESS
    stamps = {row["version"]: row for row in privacy["versions"]}
    for v in versions:
        stamp = stamps.get(v["version"])
        dp = f"  (epsilon, delta) = ({stamp['epsilon']:.2f}, {stamp['delta']:g})" if stamp else ""
        env.print(f"version {v['version']:4d}  parent {v['parent']}  round {v['round_id']}"
                  f"  sha256 {v['sha256'][:16]}{dp}")  # fmt: skip
    for line in privacy_lines(privacy):
        env.print(line)
    for r in rounds:
        m = r["metrics"] or {}
        env.print(f"round {r['round_id']:4d}  {r['status']:6s}  base {r['base_version']}"
                  f" -> {r['result_version']}  participants {m.get('participants', '-')}"
                  f"  accuracy {m.get('accuracy', '-')}")  # fmt: skip
        if r["round_id"] in candidates:
            env.print(f"      held back: {m.get('held_back', '')}; candidate accuracy"
                      f" {candidates[r['round_id']]:.4f} (`iomt aggregator promote"
                      f" {r['round_id']}` publishes it)")  # fmt: skip
    return ExitStatus.SUCCESS


def _export(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from aggregator.state_store import StateStore

    check_state_file(args.state)
    if args.out.exists():
        raise UsageError(f"{args.out} already exists")
    with StateStore(args.state) as store:
        latest = store.latest_version()
        version = args.version if args.version is not None else (latest.version if latest else 0)
        try:
            weights = store.load_weights(version)
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from exc
        stamp = store.privacy.versions().get(version)
    if args.signing_key is None:
        env.warn(f"iomt aggregator export: no --signing-key: {args.out} is signed with a new,"
                 " throwaway key that no device trusts unless you give it that key")  # fmt: skip
    privacy = None if stamp is None else {"epsilon": stamp.epsilon, "delta": stamp.delta,
                                           "rounds": stamp.rounds}  # fmt: skip
    _write_bundle_with_head(args.bundle, weights, version, args.out, args.signing_key, privacy)
    env.print(str(args.out))
    return ExitStatus.SUCCESS


def _rollback(env: Environment, args: argparse.Namespace) -> ExitStatus:
    """Record VERSION's weights as a new, newest version; the aggregator publishes it at start."""
    import time

    from aggregator.state_store import StateStore

    check_state_file(args.state)
    with StateStore(args.state) as store:
        known = [v.version for v in store.versions()]
        if args.target_version not in known:
            raise UsageError(f"no version {args.target_version} in {args.state} (has {known})")
        version = store.roll_back(args.target_version, time.time())
    env.print(f"version {version} = version {args.target_version}; start the aggregator"
              " to publish it (devices install it as the newest)")  # fmt: skip
    return ExitStatus.SUCCESS


def _promote(env: Environment, args: argparse.Namespace) -> ExitStatus:
    """Record a held-back candidate as a new, newest version; the aggregator publishes it at
    start, and the promotion bar restarts from it (the operator chose it)."""
    import time

    from aggregator.state_store import StateStore

    check_state_file(args.state)
    with StateStore(args.state) as store:
        try:
            version = store.promote(args.round_id, time.time())
        except KeyError as exc:
            held = ", ".join(map(str, store.candidates())) or "none"
            raise UsageError(f"{exc.args[0]} (held-back rounds: {held})") from exc
    env.print(f"version {version} = the candidate of round {args.round_id}; start the"
              " aggregator to publish it (devices install it as the newest)")  # fmt: skip
    return ExitStatus.SUCCESS


def _write_bundle_with_head(
    source: Path, weights: list[Any], version: int, out: Path, key_path: Path | None,
    privacy: dict[str, float] | None = None,
) -> None:  # fmt: skip
    """A copy of a bundle with a global head version swapped in, re-hashed and re-signed.

    Written by the bundle writer (staged, then renamed into place), so an interrupted export
    never leaves a half-signed bundle behind.
    """
    from bundle_format import signing
    from bundle_format.manifest import file_entries
    from bundle_format.reader import HEAD_FILE, load_bundle
    from bundle_format.writer import RESERVED_NAMES, write_bundle
    from edge_runtime.head import Head

    parts = bundle_parts(source)
    files = {name: parts.bundle.read_bytes(name) for name in parts.bundle.manifest["files"]}
    files[HEAD_FILE] = Head.from_weights(weights, parts.head.activations).to_npz_bytes()
    manifest = dict(parts.bundle.manifest)
    manifest["files"] = file_entries({n: c for n, c in files.items() if n not in RESERVED_NAMES})
    manifest["model_version"] = f"{parts.bundle.model_version}+fl{version}"
    manifest["federated_version"] = version
    manifest.pop("differential_privacy", None)
    if privacy is not None:  # the (epsilon, delta) the head was trained with
        manifest["differential_privacy"] = privacy
    key = signing.load_private_key(key_path) if key_path else signing.generate_private_key()
    write_bundle(out, files, manifest, key)
    load_bundle(out)
