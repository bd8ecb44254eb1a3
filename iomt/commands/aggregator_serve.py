"""`iomt aggregator` as one process (`--role single`) or as the coordinator of workers and sites.

From the bundle's head (version 0), the strategy (FLTrust's server update from a root set), the
state file, the broker and the optional hold-out set, live page and metrics file, it builds and
runs `aggregator.service.AggregatorService` until the last round closes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iomt.commands.aggregator_options import bundle_parts, model_signing_key
from iomt.commands.aggregator_roles import WEIGHTED_MEAN_STRATEGIES, coordination
from iomt.commands.certs import tls_from_arguments
from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError
from iomt.privacy_options import (
    check_privacy_arguments,
    dp_config_from_arguments,
    dp_strategy,
    privacy_plan,
)
from iomt.registry_option import registry_keys
from iomt.trust import trusted_keys

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np
    from numpy.typing import NDArray

    from fleet_protocol.messages import FitConfig
    from fleet_protocol.types import Weights

ROOT_SET_SEED = 0


def serve(env: Environment, args: argparse.Namespace, log: Callable[[str], None]) -> ExitStatus:
    """Serve rounds until they are all closed (or the privacy budget is spent)."""
    from aggregator.core_config import AggregatorConfig
    from aggregator.rate_limit import RateLimit
    from aggregator.service import AggregatorService, link_subscriptions
    from aggregator.state_store import StateStore
    from aggregator.strategies.dp_fedavg import with_privacy_report
    from aggregator.update_bounds import BoundsPolicy
    from fleet_protocol.differential_privacy import PrivacyBudgetExhaustedError
    from fleet_protocol.messages import FitConfig
    from fleet_protocol.mqtt_link import LinkConfig, MqttLink

    # keys before anything is opened: a bad one leaves no state file behind
    signers = registry_keys("--partial-signers", args.partial_signers)
    device_keys = registry_keys("--registry", args.registry)
    signing_key = model_signing_key(args.model_signing_key)
    parts = bundle_parts(args.bundle, trusted_keys(env, args))
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
    dp_config = dp_config_from_arguments(args)
    check_privacy_arguments(dp_config, args)
    if dp_config is not None and args.mode == "async":
        raise UsageError("--dp-* accounts per synchronous round: use --mode sync")
    if dp_config is not None and args.secure_agg:
        raise UsageError("--dp-* (central) needs single updates; with --secure-agg use "
                         "iomt edge --dp-local-noise")  # fmt: skip
    if args.secure_agg and args.strategy not in WEIGHTED_MEAN_STRATEGIES:
        allowed = " / ".join(WEIGHTED_MEAN_STRATEGIES)
        raise UsageError(f"--secure-agg folds one mean per round: use --strategy {allowed}")
    # the broker first: an unreachable one leaves no state file behind
    with MqttLink(link_config) as link, StateStore(args.state) as store, _live_page(args, log):
        strategy: Any = (
            dp_strategy(dp_config, store, args) if dp_config else _strategy(args, parts, fit)
        )
        on_metrics = _metrics_writer(env, args.metrics_out, args.json)
        if dp_config is not None:  # epsilon per round in the metrics, budget policy applied
            on_metrics = with_privacy_report(strategy, on_metrics, log)
        service = AggregatorService(
            config, link, store, strategy, parts.head.weights,
            evaluate=evaluate, verify_key=device_keys,
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


def _check_datasets(args: argparse.Namespace, num_classes: int) -> None:
    from iomt.input_checks import check_window_dataset

    check_window_dataset("--holdout", args.holdout, num_classes)
    check_window_dataset("--root-set", args.root_set, num_classes)


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


def _holdout_evaluator(parts: Any, holdout: Path) -> Any:
    """Embed the hold-out windows once with the bundle's backbone; score any head on them."""
    import numpy as np

    from edge_runtime.head import Head

    embeddings, labels = parts.embed_dataset(holdout)

    def evaluate(weights: list[Any]) -> float:
        head = Head.from_weights(weights, parts.head.activations)
        return float(np.mean(head.predict(embeddings) == labels))

    return evaluate


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
