"""The secure aggregation state machines routed in memory: phases, deadlines, forged messages."""

from __future__ import annotations

import numpy as np

from aggregator.secure_aggregation.coordinator import SecAggCoordinator
from fleet_protocol.aggregator_identity import aggregator_verifier
from fleet_protocol.publish import Publish
from fleet_protocol.secure_aggregation.messages import KeyAdvertisement, SecAggConfig
from fleet_protocol.secure_aggregation.participant import SecAggParticipant
from fleet_protocol.secure_aggregation.transport import device_topic, encode_phase
from fleet_protocol.signing import generate_signing_key, public_key_to_bytes

FLEET = "ph"
LENGTH = 5
DEVICES = ["a", "b", "c", "d"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _setup(silent: set[str]):  # type: ignore[no-untyped-def]
    aggregator_key = generate_signing_key()
    keys = {d: generate_signing_key() for d in DEVICES}
    verify = aggregator_verifier(public_key_to_bytes(aggregator_key.public_key()))
    config = SecAggConfig(threshold=3, vector_length=LENGTH, context=b"ph/1")
    clock = Clock()
    trusted = {d: k.public_key() for d, k in keys.items()}
    coordinator = SecAggCoordinator(FLEET, 1, config, frozenset(DEVICES), 10.0, aggregator_key,
                                    trusted.get, clock)  # fmt: skip

    def value(device: str):  # type: ignore[no-untyped-def]
        return lambda round_id, cfg: np.full(LENGTH, DEVICES.index(device) + 1, np.uint32)

    participants = {d: SecAggParticipant(FLEET, d, value(d), keys[d], verify)
                    for d in DEVICES if d not in silent}  # fmt: skip
    return coordinator, participants, clock, keys


def _deliver(messages: list[Publish], coordinator, participants) -> list[Publish]:  # type: ignore[no-untyped-def]
    """Broadcasts and inbox messages to devices, their answers to the coordinator."""
    answers: list[Publish] = []
    for message in messages:
        for participant in participants.values():
            if message.topic in participant.subscriptions():
                answers += participant.handle(message.topic, message.payload)
    replies: list[Publish] = []
    for answer in answers:
        replies += coordinator.handle(answer.topic, answer.payload)
    return replies


def test_phases_complete_and_a_silent_device_is_skipped_at_the_deadline() -> None:
    coordinator, participants, clock, _ = _setup(silent={"d"})
    pending = coordinator.start()
    for _ in range(10):
        pending = _deliver(pending, coordinator, participants)
        if not pending:
            clock.now += 11.0  # "d" never advertised: the keys phase ends at its deadline
            pending = coordinator.tick()
        if coordinator.done:
            break
    assert coordinator.error is None and coordinator.result is not None
    np.testing.assert_array_equal(coordinator.result, np.full(LENGTH, 1 + 2 + 3, np.uint32))


def test_too_few_devices_fail_the_round_at_the_deadline() -> None:
    coordinator, participants, clock, _ = _setup(silent={"c", "d"})
    _deliver(coordinator.start(), coordinator, participants)
    clock.now += 11.0
    coordinator.tick()
    assert coordinator.done and coordinator.error is not None and "threshold" in coordinator.error


def test_forged_and_misrouted_phase_messages_are_counted_and_ignored() -> None:
    coordinator, _, _, keys = _setup(silent=set())
    coordinator.start()
    advert = KeyAdvertisement("a", bytes(32), bytes(32))
    forged = encode_phase("keys", 1, "a", advert, generate_signing_key())
    unsigned = encode_phase("keys", 1, "a", advert, None)
    misrouted = encode_phase("keys", 1, "a", advert, keys["a"])
    coordinator.handle(device_topic(FLEET, "keys", "a"), forged)
    coordinator.handle(device_topic(FLEET, "keys", "a"), unsigned)
    coordinator.handle(device_topic(FLEET, "keys", "b"), misrouted)  # a's message on b's topic
    coordinator.handle(device_topic(FLEET, "keys", "a"), b"\x93junk")
    assert coordinator.rejected == 4 and coordinator.received["keys"] == {}
