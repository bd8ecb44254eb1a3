"""The device side of sampling and the privacy budget, and the (epsilon, delta) stamp of a head."""

from __future__ import annotations

import numpy as np

from edge_runtime.model_privacy import ModelPrivacy
from edge_runtime.round_core import ClientConfig, DeviceSnapshot, RoundCore
from edge_runtime.round_events import (
    CountLabelled,
    Effect,
    InstallHead,
    Log,
    MessageArrived,
    Tick,
)
from fleet_protocol.device_sampling import is_sampled
from fleet_protocol.messages import GlobalModel, RoundAnnouncement, UpdateAck
from fleet_protocol.topics import ack_topic, model_topic, round_topic
from fleet_protocol.wire import encode_message, message_sha256

FLEET, DEVICE = "ward", "dev-1"
HEAD = [np.zeros((4, 3), np.float32), np.zeros(3, np.float32)]


def _core(**snapshot: object) -> RoundCore:
    shapes = tuple(w.shape for w in HEAD)
    state = DeviceSnapshot(0, shapes, **snapshot)  # type: ignore[arg-type]
    return RoundCore(ClientConfig(FLEET, DEVICE, min_samples=8), state)


def _round(round_id: int, rate: float | None = None, seed: str | None = None) -> MessageArrived:
    announcement = RoundAnnouncement(FLEET, round_id, 0, message_sha256(HEAD), 1000.0, 1,
                                     sampling_rate=rate, sampling_seed=seed)  # fmt: skip
    return MessageArrived(round_topic(FLEET), encode_message(announcement))


def _asks_to_train(core: RoundCore, event: MessageArrived, now: float) -> bool:
    core.handle(event, now)
    return any(isinstance(e, CountLabelled) for e in core.handle(Tick(), now))


def _seed(drawn: bool, round_id: int) -> str:
    """A seed under which this device is (or is not) drawn at rate 0.5."""
    for i in range(100):
        if is_sampled(f"s{i}", round_id, DEVICE, 0.5) == drawn:
            return f"s{i}"
    raise AssertionError("no such seed")


def test_a_device_not_drawn_does_not_train_and_a_drawn_one_does() -> None:
    # Execute
    skipped = _asks_to_train(_core(), _round(1, 0.5, _seed(False, 1)), 1.0)
    joined = _asks_to_train(_core(), _round(1, 0.5, _seed(True, 1)), 1.0)
    unsampled_round = _asks_to_train(_core(), _round(1), 1.0)

    # Assert
    assert not skipped
    assert joined and unsampled_round


def test_a_privacy_budget_refusal_stops_the_device_for_good() -> None:
    # Prepare: the device sent round 1
    core = _core(sent_rounds=frozenset({1}))
    refusal = UpdateAck(FLEET, 1, DEVICE, 1, False, "privacy_budget")

    # Execute
    told = core.handle(MessageArrived(ack_topic(FLEET, DEVICE), encode_message(refusal)), 2.0)
    next_round = _asks_to_train(core, _round(2), 3.0)
    after_restart = _asks_to_train(_core(privacy_budget_spent=True), _round(3), 4.0)

    # Assert
    assert any(isinstance(e, Log) and e.record.get("event") == "privacy_budget_spent"
               for e in told)  # fmt: skip
    assert not next_round and not after_restart


def test_the_published_epsilon_travels_with_the_head_to_install() -> None:
    # Prepare
    model = GlobalModel(FLEET, 4, HEAD, 3, 4, dp_epsilon=3.12, dp_delta=1e-5)

    # Execute
    effects: list[Effect] = _core().handle(
        MessageArrived(model_topic(FLEET, 4), encode_message(model)), 1.0
    )

    # Assert
    [install] = [e for e in effects if isinstance(e, InstallHead)]
    assert install.privacy == ModelPrivacy(4, 3.12, 1e-5)
