"""Hostile and broken updates, published by the test itself, are counted and never crash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fleet_protocol.messages import ModelUpdate, RoundAnnouncement, UpdateAck
from fleet_protocol.mqtt_link import LinkConfig, MqttLink
from fleet_protocol.topics import ack_topic, round_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message

pytestmark = [pytest.mark.integration, pytest.mark.tf]

FLEET = "reject-test"
HEAD_SHAPES = [(8, 8), (8,), (8, 3), (3,)]


class FakeDevices:
    """The test's hand on the wire: reads announcements, publishes updates, awaits acks."""

    def __init__(self, url: str) -> None:
        topics = (round_topic(FLEET), f"iomt/v1/{FLEET}/ack/+")
        self.link = MqttLink(LinkConfig(url, "fake-devices", topics, persistent_session=False))
        self.link.start()

    def announcement(self, round_id: int) -> RoundAnnouncement:
        while True:
            event = self.link.next_event(30.0)
            assert event is not None, f"no announcement of round {round_id}"
            if event.kind == "message" and event.topic == round_topic(FLEET) and event.payload:
                message = decode_message(event.payload, expected_type=RoundAnnouncement)
                assert isinstance(message, RoundAnnouncement)
                if message.round_id == round_id:
                    return message

    def send(self, device_id: str, payload: bytes) -> UpdateAck:
        self.link.publish(update_topic(FLEET, device_id), payload)
        while True:
            event = self.link.next_event(30.0)
            assert event is not None, f"no ack for {device_id}"
            if event.kind == "message" and event.topic == ack_topic(FLEET, device_id):
                ack = decode_message(event.payload, expected_type=UpdateAck)
                assert isinstance(ack, UpdateAck)
                return ack


def _update(round_: RoundAnnouncement, device_id: str, sequence: int, **changes: object) -> bytes:
    shapes = changes.pop("shapes", HEAD_SHAPES)
    delta = [np.full(shape, 0.01, np.float32) for shape in shapes]  # type: ignore[union-attr]
    fields = {
        "fleet": FLEET, "round_id": round_.round_id, "base_version": round_.model_version,
        "device_id": device_id, "sequence": sequence, "num_examples": 10, "delta": delta,
    }  # fmt: skip
    fields.update(changes)
    return encode_message(ModelUpdate(**fields), codec="float32")  # type: ignore[arg-type]


def test_bad_updates_are_rejected_with_counted_reasons_and_the_aggregator_carries_on(
    mosquitto, tiny_task, processes, tmp_path: Path
) -> None:
    # Prepare
    metrics = tmp_path / "metrics.jsonl"
    devices = FakeDevices(mosquitto.url)
    aggregator = processes.start("aggregator", [
        "aggregator", "--broker", mosquitto.url, "--fleet", FLEET,
        "--bundle", str(tiny_task.bundle_path), "--state", str(tmp_path / "agg.sqlite"),
        "--rounds", "2", "--min-clients", "2", "--deadline", "120", "--codec", "float32",
        "--metrics-out", str(metrics), "--json",
    ])  # fmt: skip
    round1 = devices.announcement(1)

    # Execute
    acks = {
        "malformed": devices.send("dev-x", b"\x93not an envelope"),
        "wrong_shape": devices.send("dev-a", _update(round1, "dev-a", 1, shapes=[(2, 2)] * 4)),
        "stale": devices.send("dev-a", _update(round1, "dev-a", 1, round_id=7)),
        "wrong_topic": devices.send("dev-b", _update(round1, "dev-a", 1)),
        "accepted": devices.send("dev-a", _update(round1, "dev-a", 1)),
        "resend": devices.send("dev-a", _update(round1, "dev-a", 1)),
        "duplicate": devices.send("dev-a", _update(round1, "dev-a", 2)),
        "closes": devices.send("dev-b", _update(round1, "dev-b", 1)),
    }
    round2 = devices.announcement(2)
    acks["replayed"] = devices.send("dev-a", _update(round2, "dev-a", 1))
    acks["closes2a"] = devices.send("dev-a", _update(round2, "dev-a", 3))
    acks["closes2b"] = devices.send("dev-b", _update(round2, "dev-b", 2))
    exit_code = aggregator.finish(timeout_s=60)

    # Assert
    assert exit_code == 0
    for reason in ("malformed", "wrong_shape", "stale", "wrong_topic", "duplicate", "replayed"):
        assert (acks[reason].accepted, acks[reason].reason) == (False, reason)
    assert all(acks[k].accepted for k in ("accepted", "resend", "closes", "closes2a", "closes2b"))
    first, second = (json.loads(line) for line in metrics.read_text().splitlines())
    assert first["rejected"] == {
        "duplicate": 1, "malformed": 1, "stale": 1, "wrong_shape": 1, "wrong_topic": 1,
    }  # fmt: skip
    assert (first["participants"], first["num_examples"], first["resent"]) == (2, 20, 1)
    assert second["rejected"] == {"replayed": 1}
    assert second["participants"] == 2
