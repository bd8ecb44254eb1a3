"""`iomt aggregator`: run federated rounds over MQTT; `status` and `export` read its state file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iomt.broker_option import add_broker_argument, check_broker
from iomt.commands.aggregator_roles import (
    add_role_arguments,
    check_role_arguments,
    coordination,
    partial_signers,
)
from iomt.commands.certs import add_tls_arguments, tls_from_arguments
from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError
from iomt.input_checks import check_state_file
from iomt.privacy_options import (
    add_dp_arguments,
    check_privacy_arguments,
    dp_config_from_arguments,
    dp_strategy,
    privacy_lines,
    privacy_plan,
    privacy_status,
)
from iomt.termination import Terminated, raise_on_sigterm
from iomt.trust import add_trust_arguments, trusted_keys

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np
    from numpy.typing import NDArray

    from fleet_protocol.messages import FitConfig
    from fleet_protocol.types import Weights

SECURE_AGG_STRATEGIES = ("fedavg", "fedprox", "fedadam", "fedyogi")
ROOT_SET_SEED = 0
HELP = "run the federated aggregator (or: status / export of its state file)"
_RUN_REQUIRED = ("broker", "fleet", "bundle", "state")
_WORKER_REQUIRED = ("broker", "fleet", "state")
DEFAULT_BUFFER_SIZE = 4  # --mode async: updates per new version
DEFAULT_MAX_STALENESS = 4  # --mode async: versions an update may lag behind


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    action = getattr(args, "aggregator_action", None)
    if action == "status":
        return _status(env, args)
    if action == "export":
        return _export(env, args)
    if action == "rollback":
        return _rollback(env, args)
    if action == "promote":
        return _promote(env, args)
    required = _WORKER_REQUIRED if args.role in ("worker", "site") else _RUN_REQUIRED
    missing = [f"--{name}" for name in required if getattr(args, name) is None]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}")
    check_role_arguments(args)
    if args.role in ("worker", "site"):
        from iomt.commands.aggregator_roles import run_worker

        _check_run_arguments(args)
        key = _model_signing_key(args.model_signing_key)
        log = _logger(env, args.json)
        return _until_sigterm(env, lambda: run_worker(args, log, _verify_key(args.registry), key))
    if args.promotion_margin is not None and (args.holdout is None or args.promotion_margin < 0):
        raise UsageError("--promotion-margin needs --holdout and a margin >= 0")
    if args.strategy == "fltrust" and args.root_set is None:
        raise UsageError("--strategy fltrust needs --root-set D.npz (the server's clean data)")
    _check_run_arguments(args)
    return _until_sigterm(env, lambda: _serve(env, args))


def _until_sigterm(env: Environment, serve: Callable[[], ExitStatus]) -> ExitStatus:
    """Serve; SIGTERM (`systemctl stop`) unwinds it (state file closed, link stopped), exit 0."""
    raise_on_sigterm()
    try:
        return serve()
    except Terminated:
        env.warn("iomt aggregator: stopped (SIGTERM)")
        return ExitStatus.SUCCESS


def _check_run_arguments(args: argparse.Namespace) -> None:
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


def _check_datasets(args: argparse.Namespace, num_classes: int) -> None:
    from iomt.input_checks import check_window_dataset

    check_window_dataset("--holdout", args.holdout, num_classes)
    check_window_dataset("--root-set", args.root_set, num_classes)


def _serve(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from aggregator.core_config import AggregatorConfig
    from aggregator.rate_limit import RateLimit
    from aggregator.service import AggregatorService, link_subscriptions
    from aggregator.state_store import StateStore
    from aggregator.strategies.dp_fedavg import with_privacy_report
    from aggregator.update_bounds import BoundsPolicy
    from fleet_protocol.differential_privacy import PrivacyBudgetExhaustedError
    from fleet_protocol.messages import FitConfig
    from fleet_protocol.mqtt_link import LinkConfig, MqttLink

    signers = partial_signers(args.partial_signers)  # before anything is opened
    parts = _bundle_parts(args.bundle, trusted_keys(env, args))
    _check_datasets(args, len(parts.bundle.labels))
    fit = FitConfig(
        local_epochs=args.local_epochs, learning_rate=args.learning_rate, momentum=args.momentum
    )
    config = AggregatorConfig(
        args.fleet, args.rounds, args.min_clients, args.deadline, args.codec, fit,
        bounds=BoundsPolicy(args.max_update_norm, args.max_update_value),
        rate_limit=RateLimit(args.device_rate, args.device_burst),
        promotion_margin=args.promotion_margin,
    )  # fmt: skip
    evaluate = _holdout_evaluator(parts, args.holdout) if args.holdout else None
    client_id = args.client_id or f"aggregator-{args.fleet}"
    coordinator = args.role == "coordinator"
    link_config = LinkConfig(
        args.broker, client_id,
        link_subscriptions(args.fleet, coordinator=coordinator) + _secure_topics(args),
        tls=tls_from_arguments(args, "aggregator"),
    )  # fmt: skip
    log = _logger(env, args.json)
    dp_config = dp_config_from_arguments(args)
    check_privacy_arguments(dp_config, args)
    if dp_config is not None and args.mode == "async":
        raise UsageError("--dp-* accounts per synchronous round: use --mode sync")
    if dp_config is not None and args.secure_agg:
        raise UsageError("--dp-* (central) needs single updates; with --secure-agg use "
                         "iomt edge --dp-local-noise")  # fmt: skip
    if args.secure_agg and args.strategy not in SECURE_AGG_STRATEGIES:
        allowed = " / ".join(SECURE_AGG_STRATEGIES)
        raise UsageError(f"--secure-agg folds one mean per round: use --strategy {allowed}")
    # the broker first: an unreachable one leaves no state file behind
    with MqttLink(link_config) as link, StateStore(args.state) as store, _live_page(args, log):
        strategy: Any = (
            dp_strategy(dp_config, store, args) if dp_config else _strategy(args, parts, fit)
        )
        on_metrics = _metrics_writer(env, args.metrics_out, args.json)
        if dp_config is not None:  # epsilon per round in the metrics, budget policy applied
            on_metrics = with_privacy_report(strategy, on_metrics, log)
        signing_key = _model_signing_key(args.model_signing_key)
        service = AggregatorService(
            config, link, store, strategy, parts.head.weights,
            evaluate=evaluate, verify_key=_verify_key(args.registry),
            on_metrics=on_metrics, log=log, signing_key=signing_key,
            secure_agg=_secure_options(args), privacy=privacy_plan(dp_config, store, args),
            async_settings=_async_settings(args),
            coordination=coordination(signing_key, signers) if coordinator else None,
        )  # fmt: skip
        try:
            closed = service.run()
        except PrivacyBudgetExhaustedError as exc:
            log(str(exc))
            return ExitStatus.SUCCESS
    log(f"done: {len(closed)} rounds closed in this run")
    return ExitStatus.SUCCESS


def _live_page(args: argparse.Namespace, log: Any) -> Any:
    """The metrics endpoint and fleet page while the aggregator runs (a no-op without a port)."""
    import contextlib

    if args.metrics_port is None:
        return contextlib.nullcontext()
    from aggregator.live_page import LivePage

    try:
        page = LivePage(args.state, args.metrics_port, args.metrics_host)
    except OSError as exc:
        raise UsageError(f"--metrics-port {args.metrics_port}: {exc.strerror}") from exc
    log(f"fleet page on {page.url}/ and Prometheus metrics on {page.url}/metrics")
    return page


def _secure_topics(args: argparse.Namespace) -> tuple[str, ...]:
    if not args.secure_agg:
        return ()
    from fleet_protocol.secure_aggregation.transport import aggregator_subscriptions

    return aggregator_subscriptions(args.fleet)


def _async_settings(args: argparse.Namespace) -> Any:
    if args.mode != "async":
        return None
    from aggregator.async_core import AsyncSettings

    return AsyncSettings(args.buffer_size, args.max_staleness)


def _secure_options(args: argparse.Namespace) -> Any:
    if not args.secure_agg:
        return None
    from aggregator.secure_aggregation.service_round import SecureAggOptions

    return SecureAggOptions(phase_timeout_s=args.secure_agg_phase_timeout)


def _model_signing_key(path: Path | None) -> Any:
    if path is None:
        return None
    from bundle_format.signing import SigningKeyError, load_private_key

    try:
        return load_private_key(path)
    except (SigningKeyError, OSError) as exc:
        raise UsageError(f"--model-signing-key: {exc}") from exc


def _strategy(args: argparse.Namespace, parts: Any, fit: Any) -> Any:
    """The strategy by name; FLTrust gets its server update from the root set."""
    from aggregator.strategies import make_strategy

    if args.strategy != "fltrust":
        return make_strategy(args.strategy)
    return make_strategy("fltrust", server_update_fn=_root_set_update(parts, args.root_set, fit))


def _root_set_update(parts: Any, root_set: Path, fit: Any) -> Any:
    """FLTrust's server update from the root set's embeddings (embedded once, here)."""
    embeddings, labels = parts.embed_dataset(root_set)
    return root_set_update(parts.head.activations, embeddings, labels, fit)


def root_set_update(
    activations: Sequence[str],
    embeddings: NDArray[np.float32],
    labels: NDArray[np.int64],
    fit: FitConfig,
) -> Callable[[Weights], Weights]:
    """The global head fine-tuned on the root set exactly as a device would: the delta.

    The one `local_update` with the announced `FitConfig` (optimizer, momentum, L2, FedProx),
    seeded with `ROOT_SET_SEED`.
    """
    from edge_runtime.head import Head
    from edge_runtime.local_update import local_update

    def server_update(global_weights: Weights) -> Weights:
        head = Head.from_weights(global_weights, activations)
        return local_update(head, fit, embeddings, labels, ROOT_SET_SEED).delta

    return server_update


def _bundle_parts(path: Path, trusted: tuple[bytes, ...] | None = None) -> Any:
    from edge_runtime.device_loop import read_bundle_parts

    try:
        return read_bundle_parts(path, trusted)
    except Exception as exc:  # one line for the user whatever the bundle's fault
        raise UsageError(f"cannot read bundle {path}: {exc}") from exc


def _verify_key(registry_path: Path | None) -> Any:
    if registry_path is None:
        return None
    from aggregator.device_registry import DeviceRegistry

    return DeviceRegistry.load(registry_path).verify_key()


def _holdout_evaluator(parts: Any, holdout: Path) -> Any:
    """Embed the hold-out windows once with the bundle's backbone; score any head on them."""
    import numpy as np

    from edge_runtime.head import Head

    embeddings, labels = parts.embed_dataset(holdout)

    def evaluate(weights: list[Any]) -> float:
        head = Head.from_weights(weights, parts.head.activations)
        return float(np.mean(head.predict(embeddings) == labels))

    return evaluate


def _logger(env: Environment, as_json: bool) -> Any:
    import time

    from iomt.log_lines import json_line

    def log(line: str) -> None:
        if as_json:
            env.print(json_line("log", {"message": line}, time.time()))
        else:
            env.warn(f"aggregator: {line}")

    return log


def _metrics_writer(env: Environment, path: Path | None, as_json: bool) -> Any:
    """Per-round metrics to `--metrics-out` and, with `--json`, as a `round_closed` event."""
    import time

    from iomt.log_lines import json_line

    def write(metrics: dict[str, Any]) -> None:
        if path is not None:
            with path.open("a") as stream:
                stream.write(json.dumps(metrics, sort_keys=True) + "\n")
        if as_json:
            env.print(json_line("round_closed", dict(sorted(metrics.items())), time.time()))

    return write


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

    parts = _bundle_parts(source)
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
