"""Local broker launcher and the MQTT link against both brokers (real sockets on loopback)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from aggregator.broker import LocalBroker, find_mosquitto, free_port, mosquitto_config
from fleet_protocol.mqtt_link import (
    BrokerAddress,
    LinkConfig,
    MqttLink,
    MqttLinkError,
    topic_kind,
)

pytestmark = pytest.mark.integration


def test_broker_urls_parse_with_version_and_tls() -> None:
    assert BrokerAddress.from_url("mqtt://127.0.0.1:1999") == BrokerAddress("127.0.0.1", 1999)
    assert BrokerAddress.from_url("mqtts://h").port == 8883
    assert not BrokerAddress.from_url("mqtt://h:1?mqtt=3.1.1").mqtt_v5
    for bad in ("http://h:1", "mqtt://h:1?mqtt=4", "mqtt://:1"):
        with pytest.raises(MqttLinkError):
            BrokerAddress.from_url(bad)


def test_topic_kind_names_the_project_topics_only() -> None:
    assert topic_kind("iomt/v1/f/update/dev") == "update"
    assert topic_kind("other/topic") == ""


def test_generated_mosquitto_config_is_loopback_and_memory_only() -> None:
    port = free_port()
    text = mosquitto_config(port)
    assert f"listener {port} 127.0.0.1" in text
    assert "persistence false" in text and "allow_anonymous true" in text


@pytest.mark.parametrize("prefer", ["mosquitto", "embedded"])
def test_retained_message_round_trip(prefer: str) -> None:
    if prefer == "mosquitto" and find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    with LocalBroker(prefer=prefer) as broker:
        # Prepare
        topic = "iomt/v1/f/round"
        publisher = MqttLink(LinkConfig(broker.url, "pub", persistent_session=False)).start()

        # Execute
        publisher.publish(topic, b"announcement", retain=True)
        subscriber = MqttLink(LinkConfig(broker.url, "sub", (topic,))).start()
        events = [subscriber.next_event(5.0) for _ in range(2)]
        publisher.stop()
        subscriber.stop()

    # Assert
    assert broker.kind == ("mosquitto" if prefer == "mosquitto" else "amqtt")
    messages = [e for e in events if e is not None and e.kind == "message"]
    assert [(m.topic, m.payload, m.retain) for m in messages] == [(topic, b"announcement", True)]


def test_embedded_broker_logs_no_warnings(caplog: pytest.LogCaptureFixture) -> None:
    # Prepare
    caplog.set_level(logging.DEBUG)  # whatever the application's root level, amqtt stays quiet
    # Execute
    with LocalBroker(prefer="embedded") as broker:
        link = MqttLink(LinkConfig(broker.url, "quiet", ("t",), persistent_session=False))
        link.start()
        link.publish("t", b"x")
        link.stop()
    # Assert
    loud = [r.getMessage() for r in caplog.records
            if r.name.startswith("amqtt") and r.levelno >= logging.WARNING]  # fmt: skip
    assert loud == []
    assert logging.getLogger().level == logging.DEBUG  # the root logger is not ours to change


def test_link_to_a_closed_port_fails_with_one_error() -> None:
    link = MqttLink(LinkConfig(f"mqtt://127.0.0.1:{free_port()}", "nobody"))
    with pytest.raises(MqttLinkError, match="did not accept"):
        link.start(timeout_s=1.0)


def test_only_the_mqtt_link_imports_paho() -> None:
    # Prepare
    root = Path(__file__).resolve().parents[2]
    packages = (
        "fleet_protocol",
        "aggregator",
        "bundle_format",
        "edge_runtime",
        "firmware_bridge",
        "hardware",
        "iomt",
        "training",
    )

    # Execute
    importers = sorted(
        str(path.relative_to(root))
        for package in packages
        for path in (root / package).rglob("*.py")
        if re.search(r"^\s*(import paho|from paho)", path.read_text(), re.MULTILINE)
    )

    # Assert
    assert importers == ["fleet_protocol/mqtt_link.py"]
