"""The link's broker list: a node that dies sends the link to the next one, subscriptions and all.

Two real Mosquitto brokers stand in for two nodes of a cluster (they share no state, so the
test checks the link's part only: reconnecting elsewhere and subscribing again there).
"""

from __future__ import annotations

import pytest

from aggregator.broker import LocalBroker, find_mosquitto
from fleet_protocol.mqtt_link import (
    LinkConfig,
    LinkEvent,
    MqttLink,
    MqttLinkError,
    broker_addresses,
)

pytestmark = pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")


def _next_of_kind(link: MqttLink, kind: str, timeout_s: float = 20.0) -> LinkEvent:
    while True:
        event = link.next_event(timeout_s)
        assert event is not None, f"no {kind} event within {timeout_s} s"
        if event.kind == kind:
            return event


def test_broker_list_parses_commas_and_refuses_mixed_versions() -> None:
    # Execute
    addresses = broker_addresses("mqtt://a:1,mqtt://b:2")

    # Assert
    assert [(a.host, a.port) for a in addresses] == [("a", 1), ("b", 2)]
    with pytest.raises(MqttLinkError, match="one scheme and MQTT version"):
        broker_addresses("mqtt://a:1,mqtt://b:2?mqtt=3.1.1")
    with pytest.raises(MqttLinkError, match="no MQTT broker"):
        broker_addresses(" , ")


def test_link_fails_over_to_the_next_broker_and_subscribes_there() -> None:
    # Prepare: the link's first broker dies after it connected
    with LocalBroker() as first, LocalBroker() as second:
        config = LinkConfig(f"{first.url},{second.url}", "failover-test", ("t/#",),
                            persistent_session=False)  # fmt: skip
        with MqttLink(config) as link:
            assert _next_of_kind(link, "connected").broker == f"127.0.0.1:{first.port}"

            # Execute
            first.stop()
            reconnected = _next_of_kind(link, "connected")
            with MqttLink(LinkConfig(second.url, "publisher", persistent_session=False)) as pub:
                pub.publish("t/x", b"after failover")

            # Assert
            assert reconnected.broker == f"127.0.0.1:{second.port}"
            message = _next_of_kind(link, "message")
            assert (message.topic, message.payload) == ("t/x", b"after failover")


def test_link_starts_on_the_second_broker_when_the_first_is_down() -> None:
    # Prepare: nothing listens on the first URL
    with LocalBroker() as down:
        down_url = down.url
    with LocalBroker() as up:
        config = LinkConfig(f"{down_url},{up.url}", "start-test", persistent_session=False)

        # Execute
        with MqttLink(config) as link:
            # Assert
            assert _next_of_kind(link, "connected").broker == f"127.0.0.1:{up.port}"
