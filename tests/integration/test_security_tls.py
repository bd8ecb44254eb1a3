"""TLS + client certificates + the generated ACL, against a real Mosquitto on a loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.broker import LocalBroker, find_mosquitto
from aggregator.certs import (
    CertDirectory,
    client_tls_files,
    init_directory,
    issue_client,
    member_identity,
    revoke_client,
)
from fleet_protocol.mqtt_link import LinkConfig, LinkEvent, MqttLink, MqttLinkError, TlsFiles

pytestmark = pytest.mark.integration

FLEET = "tls-test"
ROOT = f"iomt/v1/{FLEET}"
REFUSED_WITHIN_S = 2.0


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertDirectory:
    root = tmp_path_factory.mktemp("certs")
    directory = init_directory(root)
    for name in ("dev-1", "dev-2", member_identity("w1"), member_identity("w2")):
        issue_client(directory, name)
    return directory


@pytest.fixture(scope="module")
def broker(certs: CertDirectory) -> Iterator[LocalBroker]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    with LocalBroker(tls_dir=certs.root, acl_fleet=FLEET) as running:
        yield running


def _link(url: str, name: str, tls: TlsFiles | None, *topics: str) -> MqttLink:
    config = LinkConfig(url, f"test-{name}", topics, persistent_session=False, tls=tls)
    return MqttLink(config)


def _connect(broker: LocalBroker, certs: CertDirectory, name: str, *topics: str) -> MqttLink:
    return _link(broker.url, name, client_tls_files(certs.root, name), *topics).start(10.0)


def _next_message(link: MqttLink) -> LinkEvent:
    while True:
        event = link.next_event(10.0)
        assert event is not None, "no message within 10 s"
        if event.kind == "message":
            return event


def test_a_device_with_its_certificate_connects(broker: LocalBroker, certs: CertDirectory) -> None:
    link = _connect(broker, certs, "dev-1")
    assert link.connected.is_set()
    link.stop()


def test_no_client_certificate_is_refused(broker: LocalBroker, certs: CertDirectory) -> None:
    tls = TlsFiles(str(certs.ca_cert))
    with pytest.raises(MqttLinkError):
        _link(broker.url, "anonymous", tls).start(REFUSED_WITHIN_S)


def test_certificate_of_another_ca_is_refused(
    broker: LocalBroker, certs: CertDirectory, tmp_path: Path
) -> None:
    rogue = init_directory(tmp_path / "rogue")
    issue_client(rogue, "dev-1")
    tls = TlsFiles(
        str(certs.ca_cert), str(rogue.client_cert("dev-1")), str(rogue.client_key("dev-1"))
    )
    with pytest.raises(MqttLinkError):
        _link(broker.url, "rogue", tls).start(REFUSED_WITHIN_S)


def test_broker_of_another_ca_is_not_trusted(
    broker: LocalBroker, certs: CertDirectory, tmp_path: Path
) -> None:
    rogue = init_directory(tmp_path / "rogue")
    own = client_tls_files(certs.root, "dev-1")
    tls = TlsFiles(str(rogue.ca_cert), own.client_cert, own.client_key)
    with pytest.raises(MqttLinkError):
        _link(broker.url, "dev-1", tls).start(REFUSED_WITHIN_S)


def test_plaintext_connection_to_the_tls_port_fails(broker: LocalBroker) -> None:
    with pytest.raises(MqttLinkError):
        _link(f"mqtt://{broker.host}:{broker.port}", "plain", None).start(REFUSED_WITHIN_S)


def test_device_cannot_publish_on_another_devices_update_topic(
    broker: LocalBroker, certs: CertDirectory
) -> None:
    aggregator = _connect(broker, certs, "aggregator", f"{ROOT}/update/+")
    device = _connect(broker, certs, "dev-1")
    try:
        device.publish(f"{ROOT}/update/dev-2", b"forged")  # the broker drops it (ACL)
        device.publish(f"{ROOT}/update/dev-1", b"own")  # same client: delivered in order
        event = _next_message(aggregator)
        assert (event.topic, event.payload) == (f"{ROOT}/update/dev-1", b"own")
    finally:
        device.stop()
        aggregator.stop()


def test_only_the_aggregator_publishes_rounds_and_models(
    broker: LocalBroker, certs: CertDirectory
) -> None:
    watcher = _connect(broker, certs, "dev-2", f"{ROOT}/round", f"{ROOT}/model/+")
    device = _connect(broker, certs, "dev-1")
    aggregator = _connect(broker, certs, "aggregator")
    try:
        device.publish(f"{ROOT}/round", b"fake round")
        device.publish(f"{ROOT}/model/7", b"fake model")
        aggregator.publish(f"{ROOT}/model/1", b"real model")
        event = _next_message(watcher)
        assert (event.topic, event.payload) == (f"{ROOT}/model/1", b"real model")
    finally:
        for link in (device, aggregator, watcher):
            link.stop()


def test_device_reads_only_its_own_acks(broker: LocalBroker, certs: CertDirectory) -> None:
    device = _connect(broker, certs, "dev-1", f"{ROOT}/ack/+", f"{ROOT}/update/+")
    aggregator = _connect(broker, certs, "aggregator", f"{ROOT}/update/+")
    try:
        aggregator.publish(f"{ROOT}/ack/dev-2", b"not yours")
        aggregator.publish(f"{ROOT}/update/dev-2", b"not yours either")
        aggregator.publish(f"{ROOT}/ack/dev-1", b"yours")
        event = _next_message(device)
        assert (event.topic, event.payload) == (f"{ROOT}/ack/dev-1", b"yours")
    finally:
        device.stop()
        aggregator.stop()


def test_a_revoked_device_is_refused_after_a_broker_restart(tmp_path: Path) -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    certs = init_directory(tmp_path / "certs")
    for device_id in ("dev-1", "dev-2"):
        issue_client(certs, device_id)
    revoke_client(certs, "dev-2")  # e.g. the watch was stolen
    with LocalBroker(tls_dir=certs.root, acl_fleet=FLEET) as restarted:
        _connect(restarted, certs, "dev-1").stop()
        with pytest.raises(MqttLinkError):
            _link(restarted.url, "dev-2", client_tls_files(certs.root, "dev-2")).start(
                REFUSED_WITHIN_S
            )


def test_a_device_certificate_cannot_take_the_aggregators_client_id(
    broker: LocalBroker, certs: CertDirectory
) -> None:
    # Prepare: the aggregator connected under the client id `iomt aggregator` asks for
    tls = client_tls_files(certs.root, "aggregator")
    own = LinkConfig(broker.url, f"aggregator-{FLEET}", (f"{ROOT}/update/+",),
                     persistent_session=False, tls=tls)  # fmt: skip
    aggregator = MqttLink(own).start(10.0)
    device = _connect(broker, certs, "dev-1")
    try:
        # Execute: dev-2's certificate asks for the aggregator's client id
        theirs = client_tls_files(certs.root, "dev-2")
        config = LinkConfig(broker.url, f"aggregator-{FLEET}", (), persistent_session=False,
                            tls=theirs)  # fmt: skip
        hijacker = MqttLink(config).start(10.0)
        hijacker.stop()
        device.publish(f"{ROOT}/update/dev-1", b"still heard")

        # Assert: the broker named it after its certificate; the aggregator stayed on
        event = _next_message(aggregator)
        assert (event.topic, event.payload) == (f"{ROOT}/update/dev-1", b"still heard")
        assert aggregator.connected.is_set()
    finally:
        device.stop()
        aggregator.stop()


def test_a_device_of_this_fleet_reads_and_writes_nothing_of_another(
    broker: LocalBroker, certs: CertDirectory
) -> None:
    other = f"iomt/v1/other-{FLEET}"
    device = _connect(broker, certs, "dev-1", f"{other}/round", f"{ROOT}/round")
    aggregator = _connect(broker, certs, "aggregator", f"{other}/update/+", f"{ROOT}/update/+")
    try:
        aggregator.publish(f"{other}/round", b"other fleet's round")  # not in this ACL
        device.publish(f"{other}/update/dev-1", b"into the other fleet")
        aggregator.publish(f"{ROOT}/round", b"own round")
        device.publish(f"{ROOT}/update/dev-1", b"own update")
        assert _next_message(device).payload == b"own round"
        assert _next_message(aggregator).payload == b"own update"
    finally:
        device.stop()
        aggregator.stop()


def test_the_broker_refuses_a_publish_larger_than_its_packet_limit(
    broker: LocalBroker, certs: CertDirectory
) -> None:
    aggregator = _connect(broker, certs, "aggregator", f"{ROOT}/update/+")
    try:
        flooder = _connect(broker, certs, "dev-1")
        with contextlib.suppress(MqttLinkError):
            flooder.publish(f"{ROOT}/update/dev-1", b"x" * (4 * 1024 * 1024), timeout_s=2.0)
        flooder.stop()
        sender = _connect(broker, certs, "dev-2")
        sender.publish(f"{ROOT}/update/dev-2", b"small")
        sender.stop()
        event = _next_message(aggregator)
        assert (event.topic, event.payload) == (f"{ROOT}/update/dev-2", b"small")
    finally:
        aggregator.stop()


def test_a_worker_with_its_own_certificate_takes_updates_and_acks_devices(
    broker: LocalBroker, certs: CertDirectory
) -> None:
    # Prepare: worker w1 on the workers' shared subscription, as `iomt aggregator --role worker`
    worker = _connect(broker, certs, "aggregator.w1", f"$share/workers/{ROOT}/update/+")
    device = _connect(broker, certs, "dev-1", f"{ROOT}/ack/+")
    try:
        # Execute
        device.publish(f"{ROOT}/update/dev-1", b"update")
        update = _next_message(worker)
        worker.publish(f"{ROOT}/ack/dev-1", b"ack")

        # Assert
        assert (update.topic, update.payload) == (f"{ROOT}/update/dev-1", b"update")
        assert _next_message(device).payload == b"ack"
    finally:
        device.stop()
        worker.stop()


def test_a_worker_writes_only_its_own_partial_sum_never_a_round(
    broker: LocalBroker, certs: CertDirectory
) -> None:
    # Prepare: the coordinator follows rounds and partial sums; both workers connected at once
    coordinator = _connect(broker, certs, "aggregator", f"{ROOT}/round", f"{ROOT}/partial/+")
    w1 = _connect(broker, certs, "aggregator.w1")
    w2 = _connect(broker, certs, "aggregator.w2")
    try:
        # Execute: w1 forges w2's sum and a round, then sends its own
        w1.publish(f"{ROOT}/partial/w2", b"w2's sum, forged")
        w1.publish(f"{ROOT}/round", b"a round from a worker")
        w1.publish(f"{ROOT}/partial/w1", b"w1's sum")
        event = _next_message(coordinator)

        # Assert: only its own sum arrived; neither worker pushed the other off
        assert (event.topic, event.payload) == (f"{ROOT}/partial/w1", b"w1's sum")
        assert w1.connected.is_set() and w2.connected.is_set()
    finally:
        for link in (w1, w2, coordinator):
            link.stop()
