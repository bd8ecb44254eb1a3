"""The aggregator service in-process against a real Mosquitto: registry, signatures, deadline."""

from __future__ import annotations

import threading
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
from fleet_protocol.chunking import split_into_chunks
from fleet_protocol.messages import DeviceStatus, ModelUpdate, RoundAnnouncement, UpdateAck
from fleet_protocol.mqtt_link import LinkConfig, MqttLink
from fleet_protocol.signing import (
    generate_signing_key,
    public_key_from_bytes,
    public_key_to_bytes,
)
from fleet_protocol.topics import ack_topic, round_topic, status_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message

pytestmark = pytest.mark.integration

HEAD = [np.zeros((4, 2), np.float32), np.zeros(2, np.float32)]


class RunningAggregator:
    """An AggregatorService on a thread, with the metrics it reported."""

    def __init__(self, url: str, fleet: str, state: Path, **options: Any) -> None:
        verify_key = options.pop("verify_key", None)
        self.config = AggregatorConfig(fleet, options.pop("rounds", 1), options.pop("quorum", 2),
                                       options.pop("deadline", 60.0), codec="float32")  # fmt: skip
        self.link = MqttLink(LinkConfig(url, f"agg-{fleet}", link_subscriptions(fleet))).start()
        self.store = StateStore(state)
        self.metrics: list[dict[str, Any]] = []
        self.service = AggregatorService(
            self.config, self.link, self.store, make_strategy("fedavg"), HEAD,
            verify_key=verify_key, on_metrics=self.metrics.append,
        )  # fmt: skip
        self.thread = threading.Thread(target=self.service.run, daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        self.link.stop()
        self.store.close()


class Device:
    """A device's wire behaviour without any training: signed constant deltas."""

    def __init__(self, url: str, fleet: str, device_id: str, key: Any = None) -> None:
        self.fleet, self.device_id, self.key = fleet, device_id, key
        topics = (round_topic(fleet), ack_topic(fleet, device_id))
        self.link = MqttLink(LinkConfig(url, f"dev-{fleet}-{device_id}", topics,
                                        persistent_session=False)).start()  # fmt: skip
        self.round = self._announcement()

    def _announcement(self) -> RoundAnnouncement:
        while True:
            event = self.link.next_event(30)
            assert event is not None
            if event.kind == "message" and event.topic == round_topic(self.fleet):
                message = decode_message(event.payload, expected_type=RoundAnnouncement)
                assert isinstance(message, RoundAnnouncement)
                return message

    def send(self, sequence: int = 1, value: float = 1.0, chunk_bytes: int = 0) -> UpdateAck:
        delta = [np.full(w.shape, value, np.float32) for w in HEAD]
        update = ModelUpdate(self.fleet, self.round.round_id, self.round.model_version,
                             self.device_id, sequence, 10, delta)  # fmt: skip
        payload = encode_message(update, codec="float32", signing_key=self.key)
        pieces = split_into_chunks(payload, "m1", chunk_bytes) if chunk_bytes else [payload]
        for piece in pieces:
            self.link.publish(update_topic(self.fleet, self.device_id), piece)
        while True:
            event = self.link.next_event(30)
            assert event is not None
            if event.kind == "message" and event.topic == ack_topic(self.fleet, self.device_id):
                ack = decode_message(event.payload, expected_type=UpdateAck)
                assert isinstance(ack, UpdateAck)
                return ack

    def close(self) -> None:
        self.link.stop()


def _send_once(url: str, fleet: str, device_id: str, key: Any = None, **kw: Any) -> UpdateAck:
    device = Device(url, fleet, device_id, key)
    try:
        return device.send(**kw)
    finally:
        device.close()


def test_registry_refuses_unsigned_unknown_revoked_and_forged(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare
    keys = {name: generate_signing_key() for name in ("good", "good2", "revoked", "other")}
    registry = DeviceRegistry(tmp_path / "fleet.json")
    for name in ("good", "good2", "revoked"):
        registry.add(name, public_key_to_bytes(keys[name].public_key()))
    registry.revoke("revoked")
    trusted = {d: public_key_from_bytes(k) for d, k in registry.trusted_keys().items()}
    aggregator = RunningAggregator(broker.url, "reg", tmp_path / "agg.sqlite", quorum=2,
                                   verify_key=trusted.get)  # fmt: skip

    # Execute
    url = broker.url
    acks = {
        "unsigned": _send_once(url, "reg", "good"),
        "unknown": _send_once(url, "reg", "stranger", keys["other"]),
        "revoked": _send_once(url, "reg", "revoked", keys["revoked"]),
        "forged": _send_once(url, "reg", "good", keys["other"]),
        "good": _send_once(url, "reg", "good", keys["good"]),
        "good2": _send_once(url, "reg", "good2", keys["good2"]),
    }
    aggregator.join()

    # Assert
    for name in ("unsigned", "unknown", "revoked", "forged"):
        assert (acks[name].accepted, acks[name].reason) == (False, "unauthenticated"), name
    assert acks["good"].accepted and acks["good2"].accepted
    (metrics,) = aggregator.metrics
    assert metrics["rejected"] == {"unauthenticated": 4}
    assert metrics["participants"] == 2


def test_deadline_below_quorum_closes_without_a_new_version(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare
    aggregator = RunningAggregator(broker.url, "late", tmp_path / "agg.sqlite", quorum=2,
                                   deadline=1.0, rounds=1)  # fmt: skip

    # Execute
    ack = _send_once(broker.url, "late", "only")
    aggregator.join()

    # Assert
    assert ack.accepted
    (metrics,) = aggregator.metrics
    assert metrics["status"] == "below_quorum"
    assert (metrics["participants"], metrics["model_version"]) == (1, 0)


def test_quorum_reached_publishes_the_weighted_mean(broker: LocalBroker, tmp_path: Path) -> None:
    # Prepare
    aggregator = RunningAggregator(broker.url, "mean", tmp_path / "agg.sqlite", quorum=2)

    # Execute
    first = _send_once(broker.url, "mean", "a", value=1.0)
    second = _send_once(broker.url, "mean", "b", value=3.0)
    aggregator.join()

    # Assert
    assert first.accepted and second.accepted
    with StateStore(tmp_path / "agg.sqlite") as store:
        new = store.load_weights(1)
    np.testing.assert_allclose(new[0], np.full((4, 2), 2.0), rtol=1e-6)
    assert aggregator.metrics[0]["participants"] == 2


def test_a_chunked_update_is_reassembled_and_counts_once(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare
    aggregator = RunningAggregator(broker.url, "chunks", tmp_path / "agg.sqlite", quorum=2)

    # Execute
    chunked = _send_once(broker.url, "chunks", "a", value=1.0, chunk_bytes=64)
    whole = _send_once(broker.url, "chunks", "b", value=3.0)
    aggregator.join()

    # Assert
    assert chunked.accepted and whole.accepted
    (metrics,) = aggregator.metrics
    assert (metrics["participants"], metrics["rejected"]) == (2, {})
    with StateStore(tmp_path / "agg.sqlite") as store:
        np.testing.assert_allclose(store.load_weights(1)[1], np.full(2, 2.0), rtol=1e-6)


def test_a_device_that_vanishes_mid_round_is_counted_dropped(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare: two devices online, quorum 1
    aggregator = RunningAggregator(broker.url, "drop", tmp_path / "agg.sqlite", quorum=1)
    watcher = Device(broker.url, "drop", "watcher")  # the round is open once this returns
    for device_id in ("stays", "vanishes"):
        status = encode_message(DeviceStatus("drop", device_id, True))
        watcher.link.publish(status_topic("drop", device_id), status, retain=True)

    # Execute: one device reports; the other's last will says it went offline
    offline = encode_message(DeviceStatus("drop", "vanishes", False))
    watcher.link.publish(status_topic("drop", "vanishes"), offline, retain=True)
    ack = _send_once(broker.url, "drop", "stays")
    aggregator.join()
    watcher.close()

    # Assert
    assert ack.accepted
    (metrics,) = aggregator.metrics
    assert (metrics["participants"], metrics["dropped"]) == (1, 1)
