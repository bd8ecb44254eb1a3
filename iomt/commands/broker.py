"""`iomt broker`: run a local MQTT broker on loopback (Mosquitto if installed, else amqtt)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError
from iomt.termination import Terminated, raise_on_sigterm

if TYPE_CHECKING:
    from aggregator.broker_bridge import BridgeTls

HELP = "run a local MQTT broker on 127.0.0.1 (Mosquitto if installed, else embedded amqtt)"
NATS_NODES = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=1883, help="TCP port (0 picks a free one)")
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="use embedded amqtt even if Mosquitto is installed",
    )
    parser.add_argument(
        "--tls",
        type=Path,
        metavar="DIR",
        help="certificate directory (`iomt certs`): TLS, client certificates, per-device ACL",
    )
    parser.add_argument(
        "--fleet",
        action="append",
        default=[],
        help="fleet the --tls ACL covers (required with --tls; repeat for several)",
    )
    parser.add_argument(
        "--bridge",
        metavar="URL",
        help="a site broker: bridge the --fleet's round and models down from this central"
        " broker (Mosquitto bridge, QoS 1, retained kept); updates and acks stay here",
    )
    parser.add_argument(
        "--bridge-tls",
        type=Path,
        metavar="DIR",
        help="with an mqtts:// --bridge: the certificate directory (`iomt certs`) whose CA and"
        " --bridge-identity certificate the bridge presents to the central broker",
    )
    parser.add_argument(
        "--bridge-identity",
        metavar="NAME",
        help="with --bridge-tls: the client certificate DIR/clients/NAME.crt (a device"
        " certificate will do: `iomt certs device site-north-bridge`)",
    )
    parser.add_argument(
        "--nats-cluster",
        type=Path,
        metavar="DIR",
        help="instead: a 3-node nats-server cluster on loopback (JetStream, MQTT 3.1.1 on each"
        " node), node configs and stores written to DIR; prints the --broker list for clients",
    )


def _acl_fleets(args: argparse.Namespace) -> tuple[str, ...]:
    """The fleets of the ACL: named one by one, checked, at least one with --tls."""
    from fleet_protocol.errors import TopicError
    from fleet_protocol.topics import validate_fleet

    if args.bridge is not None and not args.fleet:
        raise UsageError("--bridge needs --fleet NAME: the fleet whose rounds come down")
    if args.tls is not None and not args.fleet:
        raise UsageError("--tls needs --fleet NAME: the ACL covers one fleet per broker "
                         "unless several are named")  # fmt: skip
    try:
        return tuple(validate_fleet(fleet) for fleet in args.fleet)
    except TopicError as exc:
        raise UsageError(f"--fleet: {exc}") from exc


def _bridge_url(url: str | None, tls: BridgeTls | None) -> str | None:
    """The --bridge URL, checked (one list of one kind, TLS iff mqtts://) before anything starts."""
    if url is None:
        return None
    from aggregator.broker_bridge import bridge_config

    try:
        bridge_config("check", url, ("check",), tls)
    except ValueError as exc:
        raise UsageError(f"--bridge: {exc}") from exc
    return url


def _bridge_tls(args: argparse.Namespace) -> BridgeTls | None:
    """--bridge-tls DIR and --bridge-identity NAME: the bridge's CA and certificate, checked."""
    if (args.bridge_tls is None) != (args.bridge_identity is None):
        raise UsageError("--bridge-tls DIR and --bridge-identity NAME go together")
    if args.bridge_tls is None:
        return None
    if args.bridge is None:
        raise UsageError("--bridge-tls applies to a --bridge")
    from aggregator.broker_bridge import BridgeTls
    from aggregator.certs import CertDirectory

    certs = CertDirectory(args.bridge_tls)
    name = args.bridge_identity
    tls = BridgeTls(certs.ca_cert, certs.client_cert(name), certs.client_key(name))
    for path in (tls.ca_cert, tls.client_cert, tls.client_key):
        if not path.exists():
            raise UsageError(f"--bridge-tls: missing {path} (create it with `iomt certs`)")
    return tls


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from aggregator.broker import LocalBroker
    from iomt.input_checks import check_port

    check_port("--port", args.port, allow_zero=True)
    fleets = _acl_fleets(args)
    bridge_tls = _bridge_tls(args)
    raise_on_sigterm()  # stops the broker like Ctrl-C, so no Mosquitto is left behind
    if args.nats_cluster is not None:
        return _run_nats_cluster(env, args)
    broker = LocalBroker(
        port=args.port,
        prefer="embedded" if args.embedded else "mosquitto",
        tls_dir=args.tls,
        acl_fleet=fleets,
        bridge_to=_bridge_url(args.bridge, bridge_tls),
        bridge_tls=bridge_tls,
    )
    broker.start()
    try:
        env.print(broker.url)
        env.warn(f"iomt broker: {broker.kind} listening on {broker.url}; Ctrl-C stops it")
        broker.wait()
    except Terminated:
        pass
    finally:
        broker.stop()
    return ExitStatus.SUCCESS


def _run_nats_cluster(env: Environment, args: argparse.Namespace) -> ExitStatus:
    """Write the node configs into DIR, run the nodes until Ctrl-C, print the broker list."""
    from aggregator.nats_cluster import NatsCluster, find_nats_server

    if args.tls is not None or args.embedded:
        raise UsageError("--nats-cluster takes neither --tls nor --embedded")
    if find_nats_server() is None:
        raise UsageError("--nats-cluster needs nats-server (`make nats-server`, or apt-get)")
    if args.nats_cluster.exists() and not args.nats_cluster.is_dir():
        raise UsageError(f"--nats-cluster {args.nats_cluster}: not a directory")
    cluster = NatsCluster(args.nats_cluster, NATS_NODES)
    try:
        cluster.start()
        env.print(cluster.url)
        env.warn(f"iomt broker: {NATS_NODES} nats-server nodes (configs and logs in "
                 f"{args.nats_cluster}); Ctrl-C stops them")  # fmt: skip
        env.warn(f"iomt broker: aggregator workers' --queue-group-url {cluster.nats_url}")
        cluster.wait()
    except Terminated:
        pass
    finally:
        cluster.stop()
    return ExitStatus.SUCCESS
