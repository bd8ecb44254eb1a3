"""A subscription the broker refuses in its SUBACK is asked for again (real nats-server).

NATS refuses a QoS 1 subscription (SUBACK 0x80) when it cannot create the JetStream consumer
behind it in time: a thousand devices subscribing at once, or a node failing over. A client
that ignores the refusal never hears that topic again (a device its acks, an aggregator its
updates). Here the refusal is made deterministic with NATS's own limit: a session's
subscriptions may hold at most 65,535 unacknowledged messages together, so with
`max_ack_pending: 40000` the second subscription is refused until the first one is gone.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from aggregator.broker import LOOPBACK, free_port, wait_until_listening
from aggregator.nats_cluster import find_nats_server
from fleet_protocol.mqtt_link import LinkConfig, MqttLink

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_nats_server() is None, reason="nats-server is not installed"),
]

FIRST, SECOND = "iomt/v1/f/round", "iomt/v1/f/ack/dev1"


@pytest.fixture
def nats_mqtt_port(tmp_path: Path) -> Iterator[int]:
    """One nats-server with JetStream and an MQTT listener allowing 40,000 pending per sub."""
    port, mqtt_port = free_port(), free_port()
    config = tmp_path / "nats.conf"
    config.write_text("\n".join([
        "server_name: refusing", f"listen: {LOOPBACK}:{port}",
        f'jetstream {{ store_dir: "{tmp_path}/js" }}',
        f"mqtt {{ listen: {LOOPBACK}:{mqtt_port}", "  max_ack_pending: 40000 }", "",
    ]))  # fmt: skip
    log = (tmp_path / "nats.log").open("wb")
    server = subprocess.Popen([find_nats_server() or "nats-server", "-c", str(config)],
                              stdout=log, stderr=log)  # fmt: skip
    try:
        wait_until_listening(LOOPBACK, mqtt_port, 20.0, lambda: server.poll() is None)
        yield mqtt_port
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_refused_subscription_is_asked_for_again_and_then_delivers(nats_mqtt_port: int) -> None:
    # Prepare: the link asks for both topics; NATS refuses the second
    url = f"mqtt://{LOOPBACK}:{nats_mqtt_port}?mqtt=3.1.1"
    link = MqttLink(LinkConfig(url, "refused-sub", subscriptions=(FIRST, SECOND))).start(20)
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sender")
    sender.connect(LOOPBACK, nats_mqtt_port)
    sender.loop_start()
    try:
        time.sleep(2.0)  # the SUBACK (with its refusal) has come back
        # Execute: the first subscription goes, so the second now fits; keep sending to it
        link.unsubscribe(FIRST)
        heard = _heard(link, sender, SECOND, within_s=20.0)
    finally:
        sender.disconnect()
        sender.loop_stop()
        link.stop()
    # Assert
    assert heard  # before the link asked again, a refused subscription stayed silent for good
    assert link.subscribe_refusals >= 1


def _heard(link: MqttLink, sender: mqtt.Client, topic: str, within_s: float) -> bool:
    """Publish to `topic` every half second until the link delivers it, or `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        sender.publish(topic, b"ack", qos=1).wait_for_publish(5)
        event = link.next_event(0.5)
        while event is not None:
            if event.kind == "message" and event.topic == topic:
                return True
            event = link.next_event(0.0)
    return False
