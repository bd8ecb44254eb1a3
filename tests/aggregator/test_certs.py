"""Local CA, certificates and the generated Mosquitto ACL (pure parts, no broker)."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from aggregator.broker_acl import mosquitto_acl, mosquitto_tls_config
from aggregator.certs import (
    CertDirectory,
    CertError,
    common_name_of,
    device_certificate_name,
    init_directory,
    issue_client,
    make_ca,
    make_client_cert,
    make_server_cert,
    member_identity,
    revoke_client,
)
from fleet_protocol.errors import TopicError


def _verify_signed_by(cert_pem: bytes, ca_pem: bytes) -> None:
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    cert.verify_directly_issued_by(ca)


def test_server_and_client_certificates_chain_to_the_ca() -> None:
    ca = make_ca()
    server, client = make_server_cert(ca), make_client_cert(ca, "watch-01")
    _verify_signed_by(server.cert_pem, ca.cert_pem)
    _verify_signed_by(client.cert_pem, ca.cert_pem)
    assert common_name_of(client.cert_pem) == "watch-01"
    assert isinstance(client.private_key, ec.EllipticCurvePrivateKey)


def test_server_certificate_names_loopback() -> None:
    server = make_server_cert(make_ca()).certificate
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)


def test_client_names_are_topic_safe_device_ids() -> None:
    with pytest.raises(TopicError):
        make_client_cert(make_ca(), "dev/1")


def test_directory_keys_are_private_and_ca_never_replaced(tmp_path: Path) -> None:
    directory = init_directory(tmp_path / "certs")
    issue_client(directory, "dev-1")
    for key in (directory.ca_key, directory.server_key, directory.client_key("dev-1")):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with pytest.raises(CertError, match="refusing"):
        init_directory(tmp_path / "certs")


def test_issuing_without_a_ca_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(CertError, match="iomt certs init"):
        issue_client(CertDirectory(tmp_path), "dev-1")


def test_acl_confines_devices_to_their_own_topics() -> None:
    acl = mosquitto_acl("ward-3").splitlines()
    assert "pattern write iomt/v1/ward-3/update/%u" in acl
    assert "pattern read iomt/v1/ward-3/ack/%u" in acl
    assert "pattern read iomt/v1/ward-3/model/+" in acl
    assert "pattern write iomt/v1/ward-3/sa/masked/%u" in acl
    assert "pattern read iomt/v1/ward-3/sa/inbox/%u" in acl
    device_rules = acl[: acl.index("user aggregator")]
    assert not any(line.startswith("pattern write") and "%u" not in line for line in device_rules)
    assert acl[acl.index("user aggregator") + 1] == "topic readwrite iomt/v1/ward-3/#"


def test_tls_config_requires_client_certificates(tmp_path: Path) -> None:
    directory = init_directory(tmp_path / "certs")
    text = mosquitto_tls_config(8883, "127.0.0.1", directory, "/x/acl").splitlines()
    assert "require_certificate true" in text
    assert "use_identity_as_username true" in text
    assert "allow_anonymous false" in text


def test_revoking_lists_the_serial_in_a_ca_signed_crl(tmp_path: Path) -> None:
    directory = init_directory(tmp_path / "certs")
    pair = issue_client(directory, "dev-1")
    crl_path = revoke_client(directory, "dev-1")
    revoke_client(directory, "dev-1")  # twice: listed once
    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    assert crl.is_signature_valid(directory.load_ca().certificate.public_key())  # type: ignore[arg-type]
    assert [r.serial_number for r in crl] == [pair.certificate.serial_number]
    config = mosquitto_tls_config(8883, "127.0.0.1", directory, "/x/acl")
    assert f"crlfile {crl_path.resolve()}" in config.splitlines()


def test_acl_covers_only_the_named_fleets_and_the_config_binds_client_ids(tmp_path: Path) -> None:
    # Execute
    acl = mosquitto_acl(["ward-3", "ward-4"]).splitlines()
    config = mosquitto_tls_config(8883, "127.0.0.1", init_directory(tmp_path / "c"), "/x/acl")

    # Assert
    assert not any("iomt/v1/+/" in line for line in acl)
    assert acl[acl.index("user aggregator") + 1 :][:2] == [
        "topic readwrite iomt/v1/ward-3/#",
        "topic readwrite iomt/v1/ward-4/#",
    ]
    assert "use_username_as_clientid true" in config.splitlines()
    assert any(line.startswith("max_packet_size ") for line in config.splitlines())
    with pytest.raises(ValueError):
        mosquitto_acl([])


def test_a_worker_writes_only_its_own_partial_sum_and_acks() -> None:
    acl = mosquitto_acl("ward-3", members=("w1", "w2")).splitlines()
    w1 = acl[acl.index("user aggregator.w1") + 1 : acl.index("user aggregator.w2")]
    writes = sorted(line for line in w1 if line.startswith("topic write"))
    assert writes == ["topic write iomt/v1/ward-3/ack/+", "topic write iomt/v1/ward-3/partial/w1"]
    assert "topic read iomt/v1/ward-3/update/+" in w1
    assert "topic read iomt/v1/ward-3/partial/+" in w1
    assert not any("readwrite" in line for line in w1)


def test_worker_certificates_are_listed_and_no_device_takes_their_names(tmp_path: Path) -> None:
    directory = init_directory(tmp_path / "certs")
    for name in (member_identity("w2"), member_identity("w1"), "dev-1"):
        issue_client(directory, name)
    assert directory.member_ids() == ("w1", "w2")
    assert common_name_of(directory.client_cert("aggregator.w1").read_bytes()) == "aggregator.w1"
    for taken in ("aggregator", "aggregator.w3"):
        with pytest.raises(CertError, match="iomt certs aggregator"):
            device_certificate_name(taken)
    with pytest.raises(TopicError):
        make_client_cert(make_ca(), member_identity("w/1"))
