"""Message authenticity end to end over a real Mosquitto.

The aggregator refuses forged, replayed and revoked-device updates with a counted reason and
the global model does not move; devices refuse rounds and models the aggregator did not sign.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aggregator.broker import LocalBroker
from aggregator.core_config import AggregatorConfig
from aggregator.device_registry import DeviceRegistry
from aggregator.service import AggregatorService, link_subscriptions
from aggregator.state_store import StateStore
from aggregator.strategies import make_strategy
from edge_runtime.fed_client import FedClient
from edge_runtime.model_install import current_head
from edge_runtime.round_core import ClientConfig
from edge_runtime.sample_store import SampleStore
from fleet_protocol.aggregator_identity import aggregator_verifier
from fleet_protocol.messages import GlobalModel, ModelUpdate, RoundAnnouncement, UpdateAck
from fleet_protocol.mqtt_link import LinkConfig, LinkEvent, MqttLink
from fleet_protocol.signing import generate_signing_key, public_key_from_bytes
from fleet_protocol.signing import public_key_to_bytes as public_bytes
from fleet_protocol.topics import ack_topic, model_topic, round_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message, message_sha256

pytestmark = pytest.mark.integration

HEAD = [np.zeros((4, 2), np.float32), np.zeros(2, np.float32)]
DEVICE_HEAD_SHAPES = [(4, 5), (5,), (5, 3), (3,)]


class Wire:
    """The test's hand on the wire: verified announcements in, updates out, acks back."""

    def __init__(self, url: str, fleet: str, aggregator_public: bytes) -> None:
        self.fleet, self.verify = fleet, aggregator_verifier(aggregator_public)
        topics = (round_topic(fleet), f"iomt/v1/{fleet}/ack/+")
        self.link = MqttLink(LinkConfig(url, f"wire-{fleet}", topics, persistent_session=False))
        self.link.start()

    def announcement(self, round_id: int) -> RoundAnnouncement:
        while True:
            event = self.link.next_event(30.0)
            assert event is not None, f"no announcement of round {round_id}"
            if event.kind == "message" and event.topic == round_topic(self.fleet):
                message = decode_message(event.payload, verify_key=self.verify)
                if isinstance(message, RoundAnnouncement) and message.round_id == round_id:
                    return message

    def send(self, device_id: str, payload: bytes) -> UpdateAck:
        self.link.publish(update_topic(self.fleet, device_id), payload)
        while True:
            event = self.link.next_event(30.0)
            assert event is not None, f"no ack for {device_id}"
            if event.kind == "message" and event.topic == ack_topic(self.fleet, device_id):
                ack = decode_message(event.payload, expected_type=UpdateAck, verify_key=self.verify)
                assert isinstance(ack, UpdateAck)
                return ack


def _update(
    round_: RoundAnnouncement, device_id: str, sequence: int, value: float, key: Any
) -> bytes:
    delta = [np.full(w.shape, value, np.float32) for w in HEAD]
    update = ModelUpdate(round_.fleet, round_.round_id, round_.model_version, device_id,
                         sequence, 10, delta)  # fmt: skip
    return encode_message(update, codec="float32", signing_key=key)


def test_forged_replayed_and_revoked_updates_are_counted_and_do_not_move_the_model(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare: a, b trusted; r revoked; the aggregator signs what it sends
    keys = {name: generate_signing_key() for name in ("a", "b", "r", "mallory", "aggregator")}
    registry = DeviceRegistry(tmp_path / "fleet.json")
    for name in ("a", "b", "r"):
        registry.add(name, public_bytes(keys[name].public_key()))
    registry.revoke("r")
    trusted = {d: public_key_from_bytes(k) for d, k in registry.trusted_keys().items()}
    config = AggregatorConfig("auth", 2, 2, 60.0, codec="float32")
    link = MqttLink(LinkConfig(broker.url, "agg-auth", link_subscriptions("auth"))).start()
    store, metrics = StateStore(tmp_path / "agg.sqlite"), []
    service = AggregatorService(config, link, store, make_strategy("fedavg"), HEAD,
                                verify_key=trusted.get, on_metrics=metrics.append,
                                signing_key=keys["aggregator"])  # fmt: skip
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    wire = Wire(broker.url, "auth", public_bytes(keys["aggregator"].public_key()))

    # Execute: round 1 honest; round 2 hostile first, then honest
    first = wire.announcement(1)
    round_1_from_a = _update(first, "a", 1, 1.0, keys["a"])
    assert wire.send("a", round_1_from_a).accepted
    assert wire.send("b", _update(first, "b", 1, 3.0, keys["b"])).accepted
    second = wire.announcement(2)
    hostile = {
        "replayed": wire.send("a", round_1_from_a),
        "forged": wire.send("b", _update(second, "b", 2, 100.0, keys["mallory"])),
        "revoked": wire.send("r", _update(second, "r", 1, 100.0, keys["r"])),
    }
    assert wire.send("a", _update(second, "a", 2, 2.0, keys["a"])).accepted
    assert wire.send("b", _update(second, "b", 2, 2.0, keys["b"])).accepted
    thread.join(timeout=60)
    link.stop()
    wire.link.stop()

    # Assert
    assert {k: (a.accepted, a.reason) for k, a in hostile.items()} == {
        "replayed": (False, "stale"),
        "forged": (False, "unauthenticated"),
        "revoked": (False, "unauthenticated"),
    }
    assert metrics[1]["rejected"] == {"stale": 1, "unauthenticated": 2}
    assert metrics[1]["participants"] == 2
    version_2 = store.load_weights(2)
    store.close()
    for tensor in version_2:  # 0 + mean(1, 3) + mean(2, 2): nothing hostile folded in
        np.testing.assert_allclose(tensor, 4.0, rtol=1e-6)


class DeviceUnderTest:
    """A real FedClient that pins the aggregator's key; the test feeds it broker events."""

    def __init__(self, url: str, tmp_path: Path, aggregator_public: bytes) -> None:
        self.link = MqttLink(LinkConfig(url, "dut", (), persistent_session=False)).start()
        self.store = SampleStore(tmp_path / "samples.sqlite")
        self.heads = tmp_path / "heads"
        pinned = public_key_from_bytes(aggregator_public)
        self.client = FedClient(ClientConfig("pin", "dut"), self.link, self.store, self.heads,
                                generate_signing_key(), aggregator_key=pinned)  # fmt: skip

    def receive(self, topic: str, payload: bytes) -> None:
        self.client.handle(LinkEvent("message", topic, payload, retain=True))

    def close(self) -> None:
        self.link.stop()
        self.store.close()


def _model(version: int, value: float) -> GlobalModel:
    weights = [np.full(shape, value, np.float32) for shape in DEVICE_HEAD_SHAPES]
    return GlobalModel("pin", version, weights, 0, 1)


def test_device_refuses_unsigned_and_forged_models_and_rounds(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare
    aggregator, mallory = generate_signing_key(), generate_signing_key()
    device = DeviceUnderTest(broker.url, tmp_path, public_bytes(aggregator.public_key()))
    genuine = _model(1, 0.5)
    announcement = RoundAnnouncement("pin", 1, 1, message_sha256(genuine.weights),
                                     time.time() + 60, 1)  # fmt: skip

    # Execute
    device.receive(round_topic("pin"), encode_message(announcement))  # unsigned
    device.receive(round_topic("pin"), encode_message(announcement, signing_key=mallory))
    device.receive(model_topic("pin", 2), encode_message(_model(2, 9.0)))  # unsigned
    device.receive(model_topic("pin", 3), encode_message(_model(3, 9.0), signing_key=mallory))
    refused_before_genuine = dict(device.client.refused)
    installed_before_genuine = current_head(device.heads)
    device.receive(round_topic("pin"), encode_message(announcement, signing_key=aggregator))
    device.receive(model_topic("pin", 1), encode_message(genuine, signing_key=aggregator))
    device.close()

    # Assert
    assert refused_before_genuine == {"signature": 4}
    assert installed_before_genuine is None
    assert device.client.announcement is not None
    installed = current_head(device.heads)
    assert installed is not None and int(installed.version) == 1
    np.testing.assert_allclose(installed.weights[0], 0.5)
