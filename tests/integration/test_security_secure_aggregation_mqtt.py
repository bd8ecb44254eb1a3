"""Secure aggregation phases over a real Mosquitto: 7 devices, 2 drop after sharing keys.

The coordinator and participants are driven by the small loops below (the service drives the
coordinator from its round core instead), so the phase messages cross a real broker.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import numpy as np
import pytest

from aggregator.broker import LocalBroker
from aggregator.secure_aggregation.coordinator import SecAggCoordinator
from fleet_protocol.aggregator_identity import aggregator_verifier
from fleet_protocol.mqtt_link import LinkConfig, LinkEvent, MqttLink
from fleet_protocol.publish import Publish
from fleet_protocol.secure_aggregation.client import encode_weighted_update
from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.secure_aggregation.fixed_point import flatten
from fleet_protocol.secure_aggregation.messages import SecAggConfig
from fleet_protocol.secure_aggregation.participant import SecAggParticipant
from fleet_protocol.secure_aggregation.transport import is_phase_topic
from fleet_protocol.signing import generate_signing_key, public_key_to_bytes

pytestmark = pytest.mark.integration

FLEET = "secagg"
SHAPES = [(8, 8), (8,), (8, 3), (3,)]
LENGTH = sum(int(np.prod(s)) for s in SHAPES) + 1
DEVICES = [f"dev-{i}" for i in range(7)]
DROPPING = {"dev-2", "dev-5"}

POLL_S = 0.05


class _Link(Protocol):
    """What the loops need of `fleet_protocol.mqtt_link.MqttLink`."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None: ...
    def next_event(self, timeout_s: float) -> LinkEvent | None: ...


def _publish_all(link: _Link, messages: list[Publish]) -> None:
    for message in messages:
        link.publish(message.topic, message.payload, retain=message.retain)


def run_coordinator(link: _Link, coordinator: SecAggCoordinator, timeout_s: float) -> None:
    """Run one round to its end (result or error); `timeout_s` bounds the whole round."""
    give_up = time.monotonic() + timeout_s
    _publish_all(link, coordinator.start())
    while not coordinator.done:
        if time.monotonic() > give_up:
            coordinator.error = coordinator.error or f"round not finished in {timeout_s:.0f} s"
            return
        event = link.next_event(POLL_S)
        if event is not None and event.kind == "message" and is_phase_topic(event.topic):
            _publish_all(link, coordinator.handle(event.topic, event.payload))
        _publish_all(link, coordinator.tick())


def run_participant(link: _Link, participant: SecAggParticipant, stop: threading.Event,
                    errors: list[str] | None = None) -> None:  # fmt: skip
    """Answer phase messages until `stop` is set; bad messages are recorded, not fatal."""
    while not stop.is_set():
        event = link.next_event(POLL_S)
        if event is None or event.kind != "message":
            continue
        try:
            _publish_all(link, participant.handle(event.topic, event.payload))
        except SecureAggregationError as exc:
            if errors is not None:
                errors.append(str(exc))


def test_masked_round_over_mqtt_survives_dropouts(broker: LocalBroker) -> None:
    # Prepare
    rng = np.random.default_rng(0)
    updates = {d: ([rng.normal(0, 0.05, s).astype(np.float32) for s in SHAPES], 50 + 10 * i)
               for i, d in enumerate(DEVICES)}  # fmt: skip
    aggregator_key = generate_signing_key()
    device_keys = {d: generate_signing_key() for d in DEVICES}
    public = {d: k.public_key() for d, k in device_keys.items()}
    verify_aggregator = aggregator_verifier(public_key_to_bytes(aggregator_key.public_key()))
    config = SecAggConfig(threshold=4, vector_length=LENGTH, context=b"secagg/1")
    coordinator = SecAggCoordinator(FLEET, 1, config, frozenset(DEVICES), 3.0,
                                    aggregator_key, public.get)  # fmt: skip
    stops = {d: threading.Event() for d in DEVICES}
    links, threads, errors = [], [], []

    def make_input(device_id: str):  # type: ignore[no-untyped-def]
        def encode(round_id: int, cfg: SecAggConfig) -> np.ndarray:
            if device_id in DROPPING:  # vanishes after sharing its keys
                stops[device_id].set()
                raise SecureAggregationError(f"{device_id} dropped")
            return encode_weighted_update(*updates[device_id], cfg)

        return encode

    for device_id in DEVICES:
        participant = SecAggParticipant(FLEET, device_id, make_input(device_id),
                                        device_keys[device_id], verify_aggregator)  # fmt: skip
        link = MqttLink(LinkConfig(broker.url, f"sa-{device_id}", participant.subscriptions(),
                                   persistent_session=False)).start()  # fmt: skip
        links.append(link)
        work = (link, participant, stops[device_id], errors)
        threads.append(threading.Thread(target=run_participant, args=work, daemon=True))
    aggregator = MqttLink(LinkConfig(broker.url, "sa-aggregator", coordinator.subscriptions(),
                                     persistent_session=False)).start()  # fmt: skip
    for thread in threads:
        thread.start()

    # Execute
    try:
        run_coordinator(aggregator, coordinator, timeout_s=60.0)
    finally:
        for event in stops.values():
            event.set()
        for thread in threads:
            thread.join(timeout=5)
        for link in (*links, aggregator):
            link.stop()

    # Assert
    assert coordinator.error is None, coordinator.error
    assert coordinator.request is not None
    assert set(coordinator.request.dropped) == DROPPING
    survivors = [d for d in DEVICES if d not in DROPPING]
    assert list(coordinator.request.survivors) == survivors
    assert coordinator.result is not None
    decoded = config.fixed_point.decode(coordinator.result)
    expected = sum(np.append(flatten(updates[d][0]) * updates[d][1] / config.example_unit,
                             updates[d][1] / config.example_unit) for d in survivors)  # fmt: skip
    assert np.max(np.abs(decoded - expected)) <= len(survivors) * config.fixed_point.step / 2 + 1e-9
    assert sorted(errors) == ["dev-2 dropped", "dev-5 dropped"]
    assert coordinator.rejected == 0
