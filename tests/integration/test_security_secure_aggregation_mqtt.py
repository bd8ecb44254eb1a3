"""Secure aggregation phases over a real Mosquitto: 7 devices, 2 drop after sharing keys."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from aggregator.broker import LocalBroker
from aggregator.secure_aggregation.coordinator import SecAggCoordinator
from aggregator.secure_aggregation.mqtt_round import run_coordinator, run_participant
from fleet_protocol.aggregator_identity import aggregator_verifier
from fleet_protocol.mqtt_link import LinkConfig, MqttLink
from fleet_protocol.secure_aggregation.client import encode_weighted_update
from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.secure_aggregation.fixed_point import flatten
from fleet_protocol.secure_aggregation.messages import SecAggConfig
from fleet_protocol.secure_aggregation.participant import SecAggParticipant
from fleet_protocol.signing import generate_signing_key, public_key_to_bytes

pytestmark = pytest.mark.integration

FLEET = "secagg"
SHAPES = [(8, 8), (8,), (8, 3), (3,)]
LENGTH = sum(int(np.prod(s)) for s in SHAPES) + 1
DEVICES = [f"dev-{i}" for i in range(7)]
DROPPING = {"dev-2", "dev-5"}


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
