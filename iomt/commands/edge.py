"""`iomt edge`: run an edge device in a fleet; `status`, `label` and `keygen` act on its store."""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from iomt.broker_option import add_broker_argument, check_broker
from iomt.commands.certs import add_tls_arguments, tls_from_arguments
from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError
from iomt.privacy_options import add_local_dp_arguments, local_dp_config
from iomt.trust import add_trust_arguments, trusted_keys

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge_runtime.round_events import LogRecord
    from edge_runtime.sample_store import SampleStore

HELP = "run a federated edge device (or: status / label / keygen on its store)"
_RUN_REQUIRED = ("broker", "fleet", "device_id", "bundle", "store")
LABELS_META = "labels"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="store_true", help="print the interpreter backend")
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML file of options (keys as the flags without --, e.g. device-id = 'dev7');"
        " flags given on the command line win",
    )
    add_broker_argument(parser)
    parser.add_argument("--fleet", help="fleet name (topic namespace)")
    parser.add_argument("--device-id", help="this device's id (as registered)")
    parser.add_argument("--bundle", type=Path, help="the installed bundle directory")
    parser.add_argument("--store", type=Path, help="the device's SQLite sample store")
    parser.add_argument("--replay", type=Path, help="window dataset .npz to replay with labels")
    parser.add_argument(
        "--serial",
        help="a microcontroller's serial port (firmware_bridge): its sensor, or with --replay"
        " and --train-on-mcu only its trainer",
    )
    parser.add_argument(
        "--wrist",
        choices=["left", "right"],
        help="wrist the --serial sensor is worn on; right-wrist samples are mirrored into the "
        "models' left-wrist frame (default: left)",
    )
    parser.add_argument(
        "--train-on-mcu",
        action="store_true",
        help="the --serial microcontroller trains each round itself; this host relays and signs"
        " (docs/serial-protocol.md section 7)",
    )
    parser.add_argument("--subject", type=int, help="replay only this subject's windows")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed-up (0: at once)")
    parser.add_argument("--keep-windows", action="store_true", help="store raw windows too")
    parser.add_argument("--min-samples", type=int, default=16, help="labelled windows to join")
    parser.add_argument("--max-rounds", type=int, help="exit after this many accepted rounds")
    parser.add_argument("--seed", type=int, default=0, help="local training seed")
    parser.add_argument(
        "--min-train-time", type=float, default=0.0, metavar="S",
        help="experiments: one local training lasts at least S s (emulates a slower CPU)",
    )  # fmt: skip
    parser.add_argument(
        "--poison", action="store_true", help="experiments: send sign-flipped deltas x10"
    )
    parser.add_argument("--json", action="store_true", help="JSON lines on stdout")
    parser.add_argument(
        "--aggregator-key", type=Path, help="aggregator's public key: refuse unsigned models"
    )
    parser.add_argument(
        "--site-key", type=Path, action="append",
        help="with --aggregator-key: the public key of the site aggregator this device sends to"
        " (`iomt aggregator --role site --worker-key`): its acks and secure-aggregation phases"
        " must carry it; rounds and models still the aggregator's. Repeat it for workers with"
        " keys of their own on one broker: an ack signed by any of them is taken",
    )  # fmt: skip
    add_tls_arguments(parser)
    add_trust_arguments(parser)
    parser.add_argument(
        "--secure-agg", action="store_true", help="send masked updates (aggregator --secure-agg)"
    )
    add_local_dp_arguments(parser)
    actions = parser.add_subparsers(dest="edge_action", metavar="ACTION")
    status = actions.add_parser("status", help="store contents, model version, last rounds")
    status.add_argument("--store", type=Path, required=True, help="the sample store")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    label = actions.add_parser("label", help="label the windows of a time range")
    label.add_argument("--store", type=Path, required=True, help="the sample store")
    label.add_argument("--from", dest="t0", type=float, required=True, help="unix seconds")
    label.add_argument("--to", dest="t1", type=float, required=True, help="unix seconds")
    label.add_argument("--label", required=True, help="class name or index")
    keygen = actions.add_parser("keygen", help="create (or show) the device's signing key")
    keygen.add_argument("--store", type=Path, required=True, help="the sample store")
    keygen.add_argument(
        "--out", type=Path, help="also write the public key as PEM (for `iomt fleet add`)"
    )


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    action = getattr(args, "edge_action", None)
    if args.version and action is None:
        from edge_runtime.interpreter import BACKEND_NAME

        env.print(f"interpreter backend: {BACKEND_NAME}")
        return ExitStatus.SUCCESS
    handlers = {"status": _status, "label": _label, "keygen": _keygen}
    if action in handlers:
        return handlers[action](env, args)
    if args.config is not None:
        from iomt.config_file import apply_config_file

        apply_config_file(args, args.config, add_arguments)
    missing = [f"--{n.replace('_', '-')}" for n in _RUN_REQUIRED if getattr(args, n) is None]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}")
    _check_run_arguments(args)
    return _serve(env, args)


def _check_run_arguments(args: argparse.Namespace) -> None:
    """Ids and numbers, before the bundle, the broker or the store is touched."""
    from iomt.input_checks import check_ids, check_number

    check_ids(fleet=args.fleet, device_id=args.device_id)
    check_broker(args.broker)
    check_number("--speed", args.speed, inclusive=True)
    check_number("--min-samples", args.min_samples)
    check_number("--max-rounds", args.max_rounds)
    check_number("--min-train-time", args.min_train_time, inclusive=True)


def _serve(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from bundle_format.errors import BundleError
    from edge_runtime.device_loop import DeviceLoop, DeviceOptions
    from edge_runtime.errors import EdgeRuntimeError
    from hardware.sensors.wrist_frame import MODEL_WRIST

    site_keys = args.site_key or []
    if site_keys and args.aggregator_key is None:
        raise UsageError("--site-key needs --aggregator-key (rounds and models are the"
                         " coordinator's to sign)")  # fmt: skip
    if len(site_keys) > 1 and args.secure_agg:
        raise UsageError("--secure-agg takes one --site-key (the secure site running the round)")
    if args.wrist is not None and args.serial is None:
        raise UsageError("--wrist applies to a --serial sensor; datasets are already in one frame")
    _check_train_on_mcu(args)
    if args.replay is not None:
        _check_replay(args.replay, args.subject)
    options = DeviceOptions(
        args.broker, args.fleet, args.device_id, args.bundle, args.store,
        replay_path=args.replay, serial_port=args.serial, subject=args.subject,
        speed=args.speed, keep_windows=args.keep_windows, max_rounds=args.max_rounds,
        min_samples=args.min_samples, seed=args.seed,
        tls=tls_from_arguments(args, args.device_id),
        aggregator_key=(None if args.aggregator_key is None
                        else _public_key("--aggregator-key", args.aggregator_key)),
        site_keys=tuple(_public_key("--site-key", path) for path in site_keys),
        trusted_keys=trusted_keys(env, args),
        dp_local=local_dp_config(args),
        poison=args.poison, min_train_s=args.min_train_time,
        secure_agg=args.secure_agg,
        wrist=args.wrist or MODEL_WRIST,
        train_on_mcu=args.train_on_mcu,
    )  # fmt: skip
    log = _logger(env, args.json, args.device_id)
    try:
        loop = DeviceLoop(options, log=log)
    except (EdgeRuntimeError, BundleError) as exc:  # a missing, altered or untrusted bundle too
        raise UsageError(str(exc)) from exc
    # systemd stops a device with SIGTERM: leave the loop, publish offline, exit 0
    signal.signal(signal.SIGTERM, lambda signum, frame: loop.request_stop())
    loop.store.set_meta(LABELS_META, json.dumps(list(loop.parts.bundle.labels)))
    source = "replay" if args.replay else "serial" if args.serial else "none"
    log({"event": "start", "public_key": _public_hex(loop.key), "source": source})
    acked = loop.run()
    log({"event": "stop", "rounds_acked": acked, "windows": loop.windows_seen})
    return ExitStatus.SUCCESS


def _check_train_on_mcu(args: argparse.Namespace) -> None:
    """--train-on-mcu needs the microcontroller and sends its delta as it computed it; with
    --replay the windows come from the dataset and the microcontroller only trains."""
    if not args.train_on_mcu:
        if args.replay is not None and args.serial is not None:
            raise UsageError("--replay and --serial are two sensors; give one (both only with "
                             "--train-on-mcu, where the microcontroller only trains)")  # fmt: skip
        return
    if args.serial is None:
        raise UsageError("--train-on-mcu needs --serial PORT (the microcontroller that trains)")
    given = {"--secure-agg": args.secure_agg, "--poison": args.poison,
             "--dp-local-noise": local_dp_config(args) is not None}  # fmt: skip
    clashes = [flag for flag, on in given.items() if on]
    if clashes:
        raise UsageError(f"--train-on-mcu cannot be combined with {', '.join(clashes)}: the "
                         "microcontroller's delta is relayed as it computed it")  # fmt: skip


def _check_replay(path: Path, subject: int | None) -> None:
    """Refuse a replay that would feed no window, before anything is created or connected."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            subjects = np.unique(data["subject"])
    except (OSError, KeyError, ValueError) as exc:
        raise UsageError(f"--replay {path}: not a window dataset ({exc})") from exc
    if subject is not None and subject not in subjects:
        span = f"{subjects.min()}-{subjects.max()}" if len(subjects) else "none"
        raise UsageError(f"--subject {subject}: no windows in {path} (subjects {span})")


def _public_key(flag: str, path: Path) -> bytes:
    from bundle_format.signing import SigningKeyError, load_public_key_bytes

    try:
        return load_public_key_bytes(path)
    except (SigningKeyError, OSError) as exc:
        raise UsageError(f"{flag}: {exc}") from exc


def _logger(env: Environment, as_json: bool, device_id: str) -> Callable[[LogRecord], None]:
    """JSON lines on stdout (every event), or one readable line per round on stderr."""
    import time

    from iomt.log_lines import device_text_line, json_line

    def log(record: LogRecord) -> None:
        record = {"device": device_id, **record}
        if as_json:
            fields = {k: v for k, v in record.items() if k != "event"}
            env.print(json_line(str(record.get("event")), fields, time.time()))
            return
        line = device_text_line(record)
        if line is not None:
            env.warn(line)

    return log


def _public_hex(key: Ed25519PrivateKey) -> str:
    from fleet_protocol.signing import public_key_to_bytes

    return public_key_to_bytes(key.public_key()).hex()


def _open_store(path: Path) -> SampleStore:
    from edge_runtime.sample_store import SampleStore

    if not path.exists():
        raise UsageError(f"no sample store {path}")
    return SampleStore(path)


def _status(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from edge_runtime.device_loop import device_directory
    from edge_runtime.model_install import current_head, previous_version

    with _open_store(args.store) as store:
        counts = store.counts()
        rounds = [r.__dict__ for r in store.recent_rounds(10)]
        for r in rounds:
            r["ack"] = store.round_outcome(r["round_id"])
    heads = device_directory(args.store) / "heads"
    installed = current_head(heads)
    report = {
        "store": str(args.store),
        "rows": counts.rows,
        "labelled": counts.labelled,
        "bytes": counts.bytes,
        "by_label": counts.by_label,
        "model_version": None if installed is None else installed.version,
        "previous_version": previous_version(heads) if installed else None,
        "rounds": rounds,
    }
    if args.json:
        env.print(json.dumps(report, default=str))
        return ExitStatus.SUCCESS
    env.print(f"store {report['store']}: {counts.rows} windows, {counts.labelled} labelled,"
              f" {counts.bytes} bytes")  # fmt: skip
    env.print(f"model version {report['model_version']} (previous {report['previous_version']})")
    for r in rounds:
        env.print(f"round {r['round_id']}: base {r['base_version']} seq {r['sequence']}"
                  f" examples {r['num_examples']} ack {r['ack']}")  # fmt: skip
    return ExitStatus.SUCCESS


def _label(env: Environment, args: argparse.Namespace) -> ExitStatus:
    with _open_store(args.store) as store:
        names = json.loads(store.get_meta(LABELS_META, "[]") or "[]")
        index = _label_index(args.label, names)
        changed = store.label_range(args.t0, args.t1, index)
    env.print(f"labelled {changed} windows as {args.label} ({index})")
    return ExitStatus.SUCCESS


def _label_index(name: str, names: list[str]) -> int:
    if name in names:
        return names.index(name)
    if name.isdigit() and (not names or int(name) < len(names)):
        return int(name)
    known = ", ".join(names) or "none recorded yet"
    raise UsageError(f"unknown label {name!r} (known: {known})")


def _keygen(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from edge_runtime.device_loop import device_directory
    from edge_runtime.fed_client import load_or_create_key

    if args.out is not None and args.out.exists():
        raise UsageError(f"{args.out} already exists")
    key = load_or_create_key(device_directory(args.store))
    if args.out is not None:
        from bundle_format.signing import public_key_pem

        args.out.write_bytes(public_key_pem(key))
    env.print(_public_hex(key))
    return ExitStatus.SUCCESS
