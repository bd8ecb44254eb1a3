"""`iomt aggregator --role worker|coordinator`: one aggregator's work over several processes.

Workers share the fleet's updates (MQTT 5 shared subscription), each validating, committing and
acknowledging its share and publishing a signed partial sum; the coordinator opens rounds, adds
the partial sums and publishes the new head. With `--model-signing-key` workers sign acks and
partial sums with that same key (under their `--worker-id`) and the coordinator verifies them
with its public half; without it the fleet is unsigned and so are the partial sums.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from iomt.environment import ExitStatus
from iomt.errors import UsageError

ROLES = ("single", "coordinator", "worker")
WORKER_STRATEGIES = ("fedavg", "fedprox", "fedadam", "fedyogi")  # a plain weighted sum folds


def add_role_arguments(parser: argparse.ArgumentParser) -> None:
    """`--role` and `--worker-id`."""
    parser.add_argument(
        "--role", choices=ROLES, default="single",
        help="single: one process does everything (default); coordinator: rounds and partial"
        " sums of workers; worker: validate, commit and ack a share of the updates",
    )  # fmt: skip
    parser.add_argument("--worker-id", help="with --role worker: its id (signer of its sums)")


def check_role_arguments(args: argparse.Namespace) -> None:
    """What `--role` forbids or needs, before anything is opened."""
    if args.role == "single":
        if args.worker_id is not None:
            raise UsageError("--worker-id needs --role worker")
        return
    if args.secure_agg:
        raise UsageError(
            f"--role {args.role} takes plain updates; --secure-agg needs --role single"
        )
    if args.strategy not in WORKER_STRATEGIES:
        allowed = " / ".join(WORKER_STRATEGIES)
        raise UsageError(f"--role {args.role} adds partial sums: use --strategy {allowed}")
    if args.role == "worker":
        from iomt.input_checks import check_ids

        if args.worker_id is None:
            raise UsageError("--role worker needs --worker-id ID")
        check_ids(fleet=args.fleet, device_id=args.worker_id)


def coordination(signing_key: Any) -> Any:
    """The coordinator's trust in partial sums: its own public key, whoever the worker is."""
    from aggregator.partial_sums import Coordination

    if signing_key is None:
        return Coordination(None)
    public = signing_key.public_key()
    return Coordination(lambda signer: public)


def run_worker(args: argparse.Namespace, log: Any, device_key: Any, signing_key: Any) -> ExitStatus:
    """Serve as one worker until interrupted."""
    from aggregator.update_bounds import BoundsPolicy
    from aggregator.worker_core import WorkerConfig, WorkerCore, WorkerTrust
    from aggregator.worker_service import WorkerService, worker_subscriptions
    from aggregator.worker_store import WorkerStore
    from fleet_protocol.mqtt_link import LinkConfig, MqttLink

    config = WorkerConfig(args.fleet, args.worker_id,
                          BoundsPolicy(args.max_update_norm, args.max_update_value))  # fmt: skip
    public = signing_key.public_key() if signing_key is not None else None
    trust = WorkerTrust(device_key, (lambda signer: public) if public else None, signing_key)
    client_id = args.client_id or f"aggregator-{args.fleet}-{args.worker_id}"
    link_config = LinkConfig(args.broker, client_id, worker_subscriptions(args.fleet),
                             tls=_tls(args))  # fmt: skip
    with WorkerStore(args.state) as store, MqttLink(link_config) as link:
        stored = store.open_round()
        rows = store.updates(stored.round_id) if stored else []
        core = WorkerCore(config, trust, stored, rows)
        service = WorkerService(core, link, store, clock=time.time, log=log)
        log(f"worker {args.worker_id}: {len(rows)} committed updates in its file")
        try:
            service.run()
        except KeyboardInterrupt:
            log(f"worker {args.worker_id}: stopped ({core.counts})")
    return ExitStatus.SUCCESS


def _tls(args: argparse.Namespace) -> Any:
    from iomt.commands.certs import tls_from_arguments

    return tls_from_arguments(args, "aggregator")
