"""`iomt certs init|device|aggregator|server|revoke --out DIR`: a local CA and TLS certificates
for the broker, devices, the aggregator and its workers or sites."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError

if TYPE_CHECKING:
    from fleet_protocol.mqtt_link import TlsFiles

HELP = "make a local CA, the broker's TLS certificate and per-device client certificates"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="certs_action", metavar="ACTION", required=True)
    init = actions.add_parser("init", help="new CA + server cert + the aggregator's client cert")
    device = actions.add_parser("device", help="a client certificate for one device")
    device.add_argument("device_id", nargs="+", help="device id(s): the certificate CN")
    member = actions.add_parser(
        "aggregator",
        help="a client certificate for a worker or site aggregator (CN aggregator.ID; restart"
        " the broker to add it to the ACL)",
    )
    member.add_argument("worker_id", nargs="+", help="worker or site id(s) (--worker-id)")
    server = actions.add_parser("server", help="re-issue the broker's certificate")
    revoke = actions.add_parser("revoke", help="revoke client certificates (restart the broker)")
    revoke.add_argument(
        "device_id", nargs="+", help="device id(s) to revoke (a worker's: aggregator.ID)"
    )
    for sub in (init, server):
        sub.add_argument(
            "--host",
            action="append",
            help="DNS name or IP the broker is reached at (repeat; default localhost, 127.0.0.1)",
        )
    for sub in (init, device, member, server, revoke):
        sub.add_argument("--out", type=Path, required=True, help="certificate directory")


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from aggregator.certs import (
        DEFAULT_SERVER_NAMES,
        CertDirectory,
        CertError,
        device_certificate_name,
        init_directory,
        issue_client,
        issue_server,
        member_identity,
        revoke_client,
    )
    from fleet_protocol.errors import TopicError

    names = tuple(args.host) if getattr(args, "host", None) else DEFAULT_SERVER_NAMES
    directory = CertDirectory(args.out)
    try:
        if args.certs_action == "init":
            init_directory(args.out, names)
            env.print(str(directory.ca_cert))
        elif args.certs_action == "server":
            issue_server(directory, names)
            env.print(str(directory.server_cert))
        elif args.certs_action == "revoke":
            for device_id in args.device_id:
                crl = revoke_client(directory, device_id)
            env.print(str(crl))
            env.warn("iomt certs: restart the broker (iomt broker --tls) to apply the CRL")
        elif args.certs_action == "aggregator":
            for name in [member_identity(worker_id) for worker_id in args.worker_id]:
                issue_client(directory, name)
                env.print(str(directory.client_cert(name)))
        else:
            for name in [device_certificate_name(device_id) for device_id in args.device_id]:
                issue_client(directory, name)
                env.print(str(directory.client_cert(name)))
    except (CertError, TopicError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    return ExitStatus.SUCCESS


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """`--tls DIR` (or `--ca/--cert/--key`) for commands that connect to the broker."""
    group = parser.add_argument_group("TLS (verify the broker, present a client certificate)")
    group.add_argument("--tls", type=Path, metavar="DIR", help="certificate directory")
    group.add_argument("--ca", type=Path, help="CA certificate (overrides DIR/ca.crt)")
    group.add_argument("--cert", type=Path, help="client cert (overrides DIR/clients/ID.crt)")
    group.add_argument("--key", type=Path, help="client key (overrides DIR/clients/ID.key)")


def tls_from_arguments(args: argparse.Namespace, client_name: str) -> TlsFiles | None:
    """A `fleet_protocol.mqtt_link.TlsFiles` from `add_tls_arguments` options, or None (plain)."""
    from aggregator.certs import CertDirectory
    from fleet_protocol.mqtt_link import TlsFiles

    tls_dir, ca, cert, key = args.tls, args.ca, args.cert, args.key
    if tls_dir is None and ca is None:
        if cert is not None or key is not None:
            raise UsageError("--cert/--key need --tls DIR or --ca")
        return None
    directory = CertDirectory(tls_dir) if tls_dir is not None else None
    if directory is not None:
        ca = ca or directory.ca_cert
        cert = cert or directory.client_cert(client_name)
        key = key or directory.client_key(client_name)
    for path in (ca, cert, key):
        if path is not None and not Path(path).exists():
            raise UsageError(f"missing TLS file {path} (create it with `iomt certs`)")
    return TlsFiles(str(ca), str(cert) if cert else None, str(key) if key else None)
