"""A local certificate authority for the fleet: CA, broker server certificate, client certificates.

Certificates are ECDSA P-256 (every OpenSSL and Mosquitto build speaks it). A client
certificate's common name is the MQTT identity: Mosquitto's `use_identity_as_username` turns it
into the username the ACL matches (`update/%u`). Building certificates is pure (values in, PEM
bytes out); `CertDirectory` is the only part that reads and writes files.

Layout of a certificate directory:

    DIR/ca.crt  DIR/ca.key  DIR/server.crt  DIR/server.key  DIR/clients/NAME.crt  NAME.key
    DIR/ca.crl  DIR/revoked.txt  (revoked client certificates; the broker reads the CRL at start)

A worker or site aggregator (`iomt aggregator --role worker|site --worker-id ID`) has a
certificate of its own, `aggregator.ID` (`iomt certs aggregator ID`): its own MQTT identity and
client id, so workers do not push each other off, and an ACL entry that lets it write only its
own partial sum. No device certificate may carry the `aggregator.` prefix.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleet_protocol.errors import FederationError

if TYPE_CHECKING:
    from fleet_protocol.mqtt_link import TlsFiles

CA_DAYS = 3650
LEAF_DAYS = 825
DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1", "::1")
AGGREGATOR_CLIENT = "aggregator"
MEMBER_PREFIX = f"{AGGREGATOR_CLIENT}."  # a worker's or site's certificate: aggregator.ID


class CertError(FederationError):
    """A certificate directory is missing files or a name is not allowed."""

    reason = "certificate"


@dataclass(frozen=True)
class CertKeyPair:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "iomt-edge-fl"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _builder(
    subject: str, issuer: x509.Name, public_key: object, days: int
) -> x509.CertificateBuilder:
    start = _now() - datetime.timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
    )


def make_ca(common_name: str = "iomt fleet CA", days: int = CA_DAYS) -> CertKeyPair:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(common_name, _name(common_name), key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return CertKeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _subject_alt_names(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _leaf(ca: CertKeyPair, common_name: str, usage: x509.ObjectIdentifier, days: int,
          names: tuple[str, ...] = ()) -> CertKeyPair:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = ca.certificate
    builder = (
        _builder(common_name, ca_cert.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(_subject_alt_names(names), critical=False)
    cert = builder.sign(ca.private_key, hashes.SHA256())
    return CertKeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def make_server_cert(
    ca: CertKeyPair, names: tuple[str, ...] = DEFAULT_SERVER_NAMES, days: int = LEAF_DAYS
) -> CertKeyPair:
    """The broker's certificate, valid for `names` (DNS names or IP addresses)."""
    return _leaf(ca, names[0], ExtendedKeyUsageOID.SERVER_AUTH, days, names)


def make_client_cert(ca: CertKeyPair, common_name: str, days: int = LEAF_DAYS) -> CertKeyPair:
    """A client certificate whose common name is the MQTT username: a device id, `aggregator`
    or a worker's or site's `aggregator.ID`."""
    from fleet_protocol.topics import validate_device_id

    if common_name.startswith(MEMBER_PREFIX):
        validate_device_id(common_name.removeprefix(MEMBER_PREFIX))  # the worker id: a topic level
    elif common_name != AGGREGATOR_CLIENT:
        validate_device_id(common_name)
    return _leaf(ca, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, days)


def member_identity(worker_id: str) -> str:
    """The certificate name of worker or site aggregator `worker_id`."""
    return MEMBER_PREFIX + worker_id


def device_certificate_name(device_id: str) -> str:
    """`device_id`, refused if it would be read as an aggregator's identity."""
    if device_id == AGGREGATOR_CLIENT or device_id.startswith(MEMBER_PREFIX):
        raise CertError(f"{device_id!r}: names starting with {MEMBER_PREFIX!r} are aggregators'"
                        " (`iomt certs aggregator ID`)")  # fmt: skip
    return device_id


def common_name_of(cert_pem: bytes) -> str:
    """The CN of a PEM certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


@dataclass(frozen=True)
class CertDirectory:
    """Where a fleet's certificates live on disk (see the module docstring for the layout)."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    def client_cert(self, name: str) -> Path:
        return self.root / "clients" / f"{name}.crt"

    def client_key(self, name: str) -> Path:
        return self.root / "clients" / f"{name}.key"

    def member_ids(self) -> tuple[str, ...]:
        """Worker and site ids with a certificate here (`iomt certs aggregator ID`), sorted."""
        names = (path.stem for path in (self.root / "clients").glob(f"{MEMBER_PREFIX}*.crt"))
        return tuple(sorted(name.removeprefix(MEMBER_PREFIX) for name in names))

    def load_ca(self) -> CertKeyPair:
        """The CA pair; raise `CertError` if `init` has not been run."""
        if not self.ca_cert.exists() or not self.ca_key.exists():
            raise CertError(f"no CA in {self.root} (run `iomt certs init --out {self.root}`)")
        return CertKeyPair(self.ca_cert.read_bytes(), self.ca_key.read_bytes())

    def require(self, *paths: Path) -> None:
        """Raise `CertError` naming the first missing file."""
        for path in paths:
            if not path.exists():
                raise CertError(f"missing {path} (create it with `iomt certs`)")

    def write_pair(self, pair: CertKeyPair, cert_path: Path, key_path: Path) -> None:
        """Write a certificate (0644) and its key (0600, never world-readable)."""
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        _write(cert_path, pair.cert_pem, 0o644)
        _write(key_path, pair.key_pem, 0o600)


def _write(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def init_directory(
    root: Path, server_names: tuple[str, ...] = DEFAULT_SERVER_NAMES
) -> CertDirectory:
    """Create the CA, the broker's server certificate and the aggregator's client certificate."""
    directory = CertDirectory(root)
    if directory.ca_key.exists():
        raise CertError(f"{directory.ca_key} exists; refusing to replace the fleet's CA")
    ca = make_ca()
    directory.write_pair(ca, directory.ca_cert, directory.ca_key)
    directory.write_pair(make_server_cert(ca, server_names), directory.server_cert,
                         directory.server_key)  # fmt: skip
    issue_client(directory, AGGREGATOR_CLIENT)
    _write(root / CRL_FILE, make_crl(ca, []), 0o644)  # the broker always checks revocation
    return directory


def issue_client(directory: CertDirectory, name: str) -> CertKeyPair:
    """Sign and write a client certificate for `name` with the directory's CA."""
    pair = make_client_cert(directory.load_ca(), name)
    directory.write_pair(pair, directory.client_cert(name), directory.client_key(name))
    return pair


def issue_server(directory: CertDirectory, names: tuple[str, ...]) -> CertKeyPair:
    """Replace the broker's server certificate (e.g. to add a LAN hostname)."""
    pair = make_server_cert(directory.load_ca(), names)
    directory.write_pair(pair, directory.server_cert, directory.server_key)
    return pair


def client_tls_files(root: Path, name: str) -> TlsFiles:
    """The link's TLS settings for client `name` from a certificate directory (files must exist)."""
    from fleet_protocol.mqtt_link import TlsFiles

    directory = CertDirectory(root)
    cert, key = directory.client_cert(name), directory.client_key(name)
    directory.require(directory.ca_cert, cert, key)
    return TlsFiles(str(directory.ca_cert), str(cert), str(key))


CRL_DAYS = 3650
REVOKED_FILE, CRL_FILE = "revoked.txt", "ca.crl"


def revoked_serials(root: Path) -> list[int]:
    """Serial numbers revoked so far (one hex serial per line of DIR/revoked.txt)."""
    path = root / REVOKED_FILE
    if not path.exists():
        return []
    return [int(line.split()[0], 16) for line in path.read_text().splitlines() if line.strip()]


def make_crl(ca: CertKeyPair, serials: list[int], days: int = CRL_DAYS) -> bytes:
    """A CRL signed by the CA listing `serials` (PEM)."""
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=days))
    )
    for serial in serials:
        revoked = (x509.RevokedCertificateBuilder().serial_number(serial)
                   .revocation_date(now - datetime.timedelta(minutes=5)).build())  # fmt: skip
        builder = builder.add_revoked_certificate(revoked)
    return builder.sign(ca.private_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def revoke_client(directory: CertDirectory, name: str) -> Path:
    """Revoke `name`'s certificate: record its serial, rewrite DIR/ca.crl (broker restart)."""
    ca = directory.load_ca()
    cert_path = directory.client_cert(name)
    directory.require(cert_path)
    serial = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number
    serials = revoked_serials(directory.root)
    if serial not in serials:
        with (directory.root / REVOKED_FILE).open("a") as stream:
            stream.write(f"{serial:x} {name}\n")
        serials.append(serial)
    crl_path = directory.root / CRL_FILE
    _write(crl_path, make_crl(ca, serials), 0o644)
    return crl_path
