"""`iomt aggregator --role worker|coordinator|site`: one aggregator's work over several processes.

Workers share the fleet's updates (MQTT 5 shared subscription), each validating, committing and
acknowledging its share and publishing a signed partial sum; the coordinator opens rounds, adds
the partial sums and publishes the new head.

Keys: each worker or site has its own (`--worker-key`, made by `iomt keys`); it signs the
worker's partial sums and acks, and the coordinator verifies every partial sum against the key
registered for that worker or site id (`--partial-signers`, a registry file written by `iomt
fleet add`). Workers verify the coordinator's rounds and models with its public key
(`--aggregator-key`) and need no secret of the coordinator's. The older set-up, every worker
holding the coordinator's `--model-signing-key`, still works; without keys the fleet is
unsigned and so are the partial sums.

A site aggregator (`--role site --upstream URL`) is a worker behind a site's own broker: it takes
every update of that broker (no shared subscription), reads the coordinator's round and models
that the site broker's bridge brings down (`iomt broker --bridge`), and sends its partial sum to
the central broker at `--upstream` (`aggregator.site_link`).
"""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from iomt.environment import ExitStatus
from iomt.errors import UsageError
from iomt.registry_option import registry_keys

ROLES = ("single", "coordinator", "worker", "site")
UPDATE_CLIENTS = ("auto", "libmosquitto", "paho")
SITE_PARTIAL_EVERY_S = 1.0  # a site's growing sum goes upstream at most this often
WORKER_QUEUE_MESSAGES = 100_000  # a worker takes bursts: updates wait here for the next batch
WORKER_QUEUE_BYTES = 256 * 1024 * 1024
# Their round folds one example-weighted mean of the deltas, so a sum of updates (a worker's or a
# site's partial sum, a secure-aggregation round's unmasked total) is all they need. Named here,
# not in `aggregator.strategies`: `iomt --help` builds this parser where aggregator is absent.
WEIGHTED_MEAN_STRATEGIES = ("fedavg", "fedprox", "fedadam", "fedyogi")


def add_role_arguments(parser: argparse.ArgumentParser) -> None:
    """`--role` and `--worker-id`."""
    parser.add_argument(
        "--role", choices=ROLES, default="single",
        help="single: one process does everything (default); coordinator: rounds and partial"
        " sums of workers; worker: validate, commit and ack a share of the updates; site: a"
        " worker behind a site broker, its partial sum sent to --upstream",
    )  # fmt: skip
    parser.add_argument(
        "--worker-id", help="with --role worker or site: its id (signer of its sums)"
    )
    parser.add_argument(
        "--upstream", metavar="URL",
        help="with --role site: the central broker the site's partial sums go to",
    )  # fmt: skip
    parser.add_argument(
        "--worker-key", type=Path, metavar="FILE",
        help="with --role worker or site: its own Ed25519 private key (`iomt keys`), which"
        " signs its partial sums and acks",
    )  # fmt: skip
    parser.add_argument(
        "--aggregator-key", type=Path, metavar="FILE",
        help="with --worker-key: the coordinator's public key, which must sign rounds and models",
    )  # fmt: skip
    parser.add_argument(
        "--partial-signers", type=Path, metavar="FILE",
        help="with --role coordinator or worker: registry of each worker's and site's public"
        " key (`iomt fleet add ID --public-key-file ... --registry FILE`); a partial sum not"
        " signed by its signer's key is refused",
    )  # fmt: skip
    parser.add_argument(
        "--update-client", choices=UPDATE_CLIENTS, default="auto",
        help="with --role worker: what takes its share of the updates; auto (default):"
        " libmosquitto (C, less CPU per update) when installed and the broker is one plain"
        " mqtt:// URL, else paho",
    )  # fmt: skip
    parser.add_argument(
        "--queue-group-url", metavar="URL",
        help="with --role worker on a NATS cluster (no MQTT shared subscriptions): take updates"
        " from a NATS queue group at nats://HOST:PORT[,...] (the nodes' client ports)",
    )  # fmt: skip


def check_role_arguments(args: argparse.Namespace) -> None:
    """What `--role` forbids or needs, before anything is opened."""
    if args.upstream is not None and args.role != "site":
        raise UsageError("--upstream needs --role site")
    _check_keys(args)
    if args.queue_group_url is not None:
        _check_queue_group_url(args)
    if args.update_client == "libmosquitto":
        _check_libmosquitto(args)
    if args.role == "single":
        if args.worker_id is not None:
            raise UsageError("--worker-id needs --role worker")
        return
    if args.secure_agg and args.role != "site":
        raise UsageError(f"--role {args.role} takes plain updates; --secure-agg needs --role"
                         " single or site")  # fmt: skip
    if args.strategy not in WEIGHTED_MEAN_STRATEGIES:
        allowed = " / ".join(WEIGHTED_MEAN_STRATEGIES)
        raise UsageError(f"--role {args.role} adds partial sums: use --strategy {allowed}")
    if getattr(args, "dp_noise_multiplier", None) is not None:
        raise UsageError(f"--role {args.role} adds partial sums; central --dp-* clips each update:"
                         " use --role single")  # fmt: skip
    if args.role in ("worker", "site"):
        from iomt.input_checks import check_ids

        if args.worker_id is None:
            raise UsageError(f"--role {args.role} needs --worker-id ID")
        check_ids(fleet=args.fleet, device_id=args.worker_id)
    if args.role == "site":
        from iomt.broker_option import check_broker

        if args.upstream is None:
            raise UsageError("--role site needs --upstream URL (the central broker)")
        check_broker(args.upstream)
        if args.tls is not None and not (_is_tls(args.broker) or _is_tls(args.upstream)):
            raise UsageError("--role site --tls: neither --broker nor --upstream is mqtts://")


def _is_tls(url: str) -> bool:
    from fleet_protocol.mqtt_link import broker_addresses

    return broker_addresses(url)[0].tls


def _check_keys(args: argparse.Namespace) -> None:
    """Which key options go with which role, and with each other."""
    worker = args.role in ("worker", "site")
    for flag, value in (("--worker-key", args.worker_key),
                        ("--aggregator-key", args.aggregator_key)):  # fmt: skip
        if value is not None and not worker:
            raise UsageError(f"{flag} needs --role worker or site")
    if args.partial_signers is not None and args.role not in ("coordinator", "worker"):
        raise UsageError("--partial-signers needs --role coordinator or worker")
    if not worker or args.worker_key is None:
        if worker and args.aggregator_key is not None:
            raise UsageError("--aggregator-key goes with --worker-key (the worker's own key)")
        return
    if args.model_signing_key is not None:
        raise UsageError("--worker-key replaces --model-signing-key on a worker or site: the"
                         " coordinator's key stays with the coordinator")  # fmt: skip
    if args.aggregator_key is None:
        raise UsageError("--worker-key needs --aggregator-key FILE (the coordinator's public"
                         " key, which signs rounds and models)")  # fmt: skip
    if args.role == "worker" and args.partial_signers is None:
        raise UsageError("--role worker --worker-key needs --partial-signers FILE (to read the"
                         " other workers' partial sums)")  # fmt: skip


def _check_queue_group_url(args: argparse.Namespace) -> None:
    from aggregator.nats_queue import NatsQueueError, nats_servers

    if args.role != "worker":
        raise UsageError("--queue-group-url needs --role worker")
    try:
        nats_servers(args.queue_group_url)
    except NatsQueueError as exc:
        raise UsageError(f"--queue-group-url: {exc}") from exc


def _check_libmosquitto(args: argparse.Namespace) -> None:
    why = _libmosquitto_refusal(args)
    if why is not None:
        raise UsageError(f"--update-client libmosquitto{why}")


def _libmosquitto_refusal(args: argparse.Namespace) -> str | None:
    """Why libmosquitto cannot take this worker's updates (the rest of a one-line refusal),
    or None where it can."""
    from aggregator.mosquitto_feed import available, usable_for

    if args.role != "worker" or args.queue_group_url is not None:
        return " needs --role worker without --queue-group-url"
    if not usable_for(args.broker, args.tls is not None or args.ca is not None):
        return " takes one plain mqtt:// broker (TLS and broker lists go through paho)"
    if not available():
        return ": pymosquitto or libmosquitto1 is not installed"
    return None


def _uses_libmosquitto(args: argparse.Namespace) -> bool:
    """`--update-client`: libmosquitto where asked, or (auto) wherever it can serve."""
    if args.update_client != "auto":
        return bool(args.update_client == "libmosquitto")
    return _libmosquitto_refusal(args) is None


def coordination(signing_key: Any, signers: Any) -> Any:
    """The coordinator's trust in partial sums: each signer's registered key, or (no
    `--partial-signers`) its own public key whoever the worker is, or none (unsigned)."""
    from aggregator.partial_sums import Coordination

    if signers is not None:
        return Coordination(signers)
    if signing_key is None:
        return Coordination(None)
    public = signing_key.public_key()
    return Coordination(lambda signer: public)


def worker_trust(args: argparse.Namespace, device_key: Any, signing_key: Any) -> Any:
    """A worker's keys: its own `--worker-key` and the coordinator's public key, or (older
    set-up) the coordinator's `--model-signing-key` for everything, or none."""
    from aggregator.worker_core import WorkerTrust
    from bundle_format.signing import SigningKeyError, load_private_key, load_public_key_bytes
    from fleet_protocol.aggregator_identity import aggregator_verifier

    peers = registry_keys("--partial-signers", args.partial_signers)
    if args.worker_key is None:
        public = signing_key.public_key() if signing_key is not None else None
        shared = (lambda signer: public) if public else None
        return WorkerTrust(device_key, shared, signing_key, peers or shared)
    try:
        own = load_private_key(args.worker_key)
    except (SigningKeyError, OSError) as exc:
        raise UsageError(f"--worker-key: {exc}") from exc
    try:
        coordinator = aggregator_verifier(load_public_key_bytes(args.aggregator_key))
    except (SigningKeyError, OSError) as exc:
        raise UsageError(f"--aggregator-key: {exc}") from exc
    return WorkerTrust(device_key, coordinator, own, peers)


def run_worker(args: argparse.Namespace, log: Any, device_key: Any, signing_key: Any) -> ExitStatus:
    """Serve as one worker (or site aggregator) until interrupted."""
    from aggregator.mosquitto_feed import FeedLink
    from aggregator.site_link import secure_site_subscriptions, site_subscriptions
    from aggregator.update_bounds import BoundsPolicy
    from aggregator.worker_core import PARTIAL_EVERY_S, WorkerConfig, WorkerCore
    from aggregator.worker_service import (
        BatchCore,
        WorkerService,
        shared_update_topic,
        worker_subscriptions,
    )
    from aggregator.worker_store import WorkerStore
    from fleet_protocol.mqtt_link import LinkConfig, MqttLink

    site = args.role == "site"
    every_s = SITE_PARTIAL_EVERY_S if site else PARTIAL_EVERY_S
    config = WorkerConfig(args.fleet, args.worker_id,
                          BoundsPolicy(args.max_update_norm, args.max_update_value),
                          partial_every_s=every_s)  # fmt: skip
    trust = worker_trust(args, device_key, signing_key)
    client_id = args.client_id or f"aggregator-{args.fleet}-{args.worker_id}"
    queued = args.queue_group_url is not None
    own_feed = _uses_libmosquitto(args)
    topics = (site_subscriptions(args.fleet) if site
              else worker_subscriptions(args.fleet, shared=not (queued or own_feed)))  # fmt: skip
    if site and args.secure_agg:
        topics = secure_site_subscriptions(args.fleet)
    link_config = LinkConfig(args.broker, client_id, topics,
                             tls=_tls(args, args.broker if site else None),
                             max_queued_messages=WORKER_QUEUE_MESSAGES,
                             max_queued_bytes=WORKER_QUEUE_BYTES)  # fmt: skip
    with MqttLink(link_config) as link, ExitStack() as stack:
        service_link = _site_link(args, client_id, link, stack) if site else link
        if queued:
            stack.enter_context(_queue_feed(args.queue_group_url, args.fleet, client_id, link, log))
        if own_feed:
            feed = stack.enter_context(_mosquitto_feed(args.broker, args.fleet, client_id, link,
                                                       log))  # fmt: skip
            service_link = FeedLink(link, feed)
            # a persistent session from a paho-only start still holds the shared subscription
            link.unsubscribe(shared_update_topic(args.fleet))
        store = stack.enter_context(WorkerStore(args.state))  # only once the brokers answered
        stored = store.open_round()
        rows = store.updates(stored.round_id) if stored else []
        core: BatchCore = WorkerCore(config, trust, stored, rows)
        if site and args.secure_agg:
            core = _secure_site(args, trust)
        service = WorkerService(core, service_link, store, clock=time.time, log=log)
        log(f"{args.role} {args.worker_id}: {len(rows)} committed updates in its file")
        try:
            service.run()
        except KeyboardInterrupt:
            log(f"{args.role} {args.worker_id}: stopped ({core.counts})")
    return ExitStatus.SUCCESS


def _secure_site(args: argparse.Namespace, trust: Any) -> Any:
    """`--role site --secure-agg`: masked rounds with the site's devices, their sum upstream."""
    from aggregator.secure_aggregation.service_round import SecureAggOptions
    from aggregator.secure_site_core import SecureSiteConfig, SecureSiteCore

    options = SecureAggOptions(phase_timeout_s=args.secure_agg_phase_timeout)
    return SecureSiteCore(SecureSiteConfig(args.fleet, args.worker_id, args.min_clients,
                                           options), trust)  # fmt: skip


def _site_link(args: argparse.Namespace, client_id: str, site: Any, stack: ExitStack) -> Any:
    """The site broker's link paired with one to the central broker for the partial sums."""
    from aggregator.site_link import SiteLink
    from fleet_protocol.mqtt_link import LinkConfig, MqttLink

    upstream = MqttLink(LinkConfig(args.upstream, f"{client_id}-upstream",
                                   tls=_tls(args, args.upstream)))  # fmt: skip
    stack.enter_context(upstream)
    return SiteLink(site, upstream)


def _queue_feed(urls: str, fleet: str, client_id: str, link: Any, log: Any) -> Any:
    """The fleet's updates from the workers' NATS queue group, into the MQTT link's queue."""
    from aggregator.nats_queue import NatsQueueFeed, nats_servers, subject_of
    from aggregator.worker_service import shared_group
    from fleet_protocol.topics import subscription_topic

    subject = subject_of(subscription_topic(fleet, "update"))
    return NatsQueueFeed(nats_servers(urls), subject, shared_group(fleet), link.events,
                         name=client_id, log=log)  # fmt: skip


def _mosquitto_feed(url: str, fleet: str, client_id: str, link: Any, log: Any) -> Any:
    """The fleet's updates through libmosquitto's shared subscription, into the link's queue
    (its acks go out the same way: `FeedLink`)."""
    from aggregator.mosquitto_feed import MosquittoFeed
    from aggregator.worker_service import shared_update_topic

    return MosquittoFeed(url, f"{client_id}-updates", shared_update_topic(fleet), link.events,
                         log=log)  # fmt: skip


def _tls(args: argparse.Namespace, url: str | None = None) -> Any:
    """A worker or site presents a certificate of its own (`iomt certs aggregator ID`). A site's
    `--tls` goes to those of its two brokers (`url`) that are mqtts://: its own broker is
    usually plain, bridged to a TLS central one."""
    from aggregator.certs import member_identity
    from iomt.commands.certs import tls_from_arguments

    if url is not None and not _is_tls(url):
        return None
    return tls_from_arguments(args, member_identity(args.worker_id))
