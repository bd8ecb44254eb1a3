"""The options of a running `iomt aggregator` and what they name, checked before anything opens.

Declared here (with `--role` and its company from `iomt.commands.aggregator_roles`), checked
before a bundle, a broker or a state file is touched, and turned into what the aggregator
needs: its signing key, the device registry's keys, the bundle's parts. Each refusal is one
line naming the option.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from iomt.broker_option import add_broker_argument, check_broker
from iomt.commands.aggregator_roles import add_role_arguments
from iomt.commands.certs import add_tls_arguments
from iomt.errors import UsageError
from iomt.privacy_options import add_dp_arguments
from iomt.trust import add_trust_arguments

DEFAULT_BUFFER_SIZE = 4  # --mode async: updates per new version
DEFAULT_MAX_STALENESS = 4  # --mode async: versions an update may lag behind


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a running aggregator, whatever its `--role`."""
    add_broker_argument(parser)
    parser.add_argument("--fleet", help="fleet name (topic namespace)")
    parser.add_argument("--bundle", type=Path, help="bundle whose head is version 0")
    parser.add_argument("--state", type=Path, help="SQLite state file (resumes if it exists)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds to close in all")
    parser.add_argument("--min-clients", type=int, default=2, help="quorum per round")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds per round")
    parser.add_argument("--strategy", default="fedavg", help="aggregation strategy")
    parser.add_argument(
        "--mode", choices=("sync", "async"), default="sync",
        help="sync: rounds wait for quorum or deadline; async: apply a buffer every K updates",
    )  # fmt: skip
    parser.add_argument(
        "--buffer-size", type=int, default=DEFAULT_BUFFER_SIZE,
        help=f"async: updates per new version (K, default {DEFAULT_BUFFER_SIZE})",
    )  # fmt: skip
    parser.add_argument(
        "--max-staleness", type=int, default=DEFAULT_MAX_STALENESS,
        help="async: refuse an update trained more than this many versions ago"
        f" (default {DEFAULT_MAX_STALENESS})",
    )  # fmt: skip
    parser.add_argument(
        "--codec",
        default="int8",
        help="update codec announced each round: int8, float16, float32 or topk:<density>"
        " (int8 top-k with error feedback, e.g. topk:0.05), each optionally +zstd",
    )
    parser.add_argument("--local-epochs", type=int, default=5, help="devices' epochs")
    parser.add_argument("--learning-rate", type=float, default=0.1, help="devices' SGD step")
    parser.add_argument("--momentum", type=float, default=0.9, help="devices' SGD momentum")
    parser.add_argument("--holdout", type=Path, help="window dataset .npz to evaluate each head")
    parser.add_argument(
        "--promotion-margin",
        type=float,
        help="with --holdout: publish a new head only if its accuracy is at most this far below"
        " the best so far; otherwise keep it as a candidate (default: publish every head)",
    )
    parser.add_argument(
        "--root-set", type=Path, help="fltrust: the server's small clean window dataset .npz"
    )
    parser.add_argument("--metrics-out", type=Path, help="append per-round metrics (JSON lines)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics on /metrics and a read-only fleet page on / (default: off)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address for --metrics-port (default: %(default)s)",
    )
    parser.add_argument("--registry", type=Path, help="device registry: refuse unsigned updates")
    parser.add_argument("--client-id", default=None, help="MQTT client id (default per fleet)")
    parser.add_argument("--json", action="store_true", help="log JSON lines to stdout")
    parser.add_argument(
        "--model-signing-key",
        type=Path,
        help="Ed25519 key (`iomt keys`) that signs rounds, models and acks for devices to verify",
    )
    add_tls_arguments(parser)
    add_trust_arguments(parser)
    add_role_arguments(parser)
    parser.add_argument(
        "--secure-agg", action="store_true", help="secure aggregation: see only the devices' sum"
    )
    parser.add_argument(
        "--secure-agg-phase-timeout", type=float, default=10.0, help="seconds per phase"
    )
    parser.add_argument(
        "--max-update-norm", type=float,
        help="refuse an update whose delta has a larger L2 norm (default: 10x the head's norm)",
    )  # fmt: skip
    parser.add_argument(
        "--max-update-value", type=float,
        help="refuse an update with a larger delta element (default: 10x the head's largest)",
    )  # fmt: skip
    parser.add_argument(
        "--device-rate", type=float, default=20.0,
        help="messages per second one device may send (sustained; more are dropped, counted)",
    )  # fmt: skip
    parser.add_argument("--device-burst", type=int, default=64, help="messages at once per device")
    add_dp_arguments(parser)


def check_run_arguments(args: argparse.Namespace) -> None:
    """Everything that can be checked before a bundle, a broker or a state file is touched."""
    from iomt.input_checks import check_appendable, check_codec, check_ids, check_number, check_port

    check_port("--metrics-port", args.metrics_port, allow_zero=True)
    check_ids(fleet=args.fleet)
    check_broker(args.broker)
    args.codec = check_codec("--codec", args.codec)
    for flag, value in (("--rounds", args.rounds), ("--min-clients", args.min_clients),
                        ("--local-epochs", args.local_epochs), ("--deadline", args.deadline),
                        ("--learning-rate", args.learning_rate),
                        ("--secure-agg-phase-timeout", args.secure_agg_phase_timeout),
                        ("--max-update-norm", args.max_update_norm),
                        ("--max-update-value", args.max_update_value),
                        ("--device-rate", args.device_rate),
                        ("--device-burst", args.device_burst)):  # fmt: skip
        check_number(flag, value)
    check_number("--momentum", args.momentum, inclusive=True, below=1.0)
    check_number("--buffer-size", args.buffer_size)
    check_number("--max-staleness", args.max_staleness, inclusive=True)
    if args.mode == "async" and args.secure_agg:
        raise UsageError("--secure-agg masks one synchronous round's sum: use --mode sync")
    if args.mode == "async" and args.role != "single":
        raise UsageError("--mode async runs as --role single (workers add one round's sums)")
    check_appendable("--metrics-out", args.metrics_out)


def model_signing_key(path: Path | None) -> Any:
    """`--model-signing-key`: the Ed25519 key that signs rounds, models and acks, or None."""
    if path is None:
        return None
    from bundle_format.signing import SigningKeyError, load_private_key

    try:
        return load_private_key(path)
    except (SigningKeyError, OSError) as exc:
        raise UsageError(f"--model-signing-key: {exc}") from exc


def bundle_parts(path: Path, trusted: tuple[bytes, ...] | None = None) -> Any:
    """The bundle's backbone, head and labels; one line for the user if it cannot be read."""
    from edge_runtime.device_loop import read_bundle_parts

    try:
        return read_bundle_parts(path, trusted)
    except Exception as exc:  # one line for the user whatever the bundle's fault
        raise UsageError(f"cannot read bundle {path}: {exc}") from exc
