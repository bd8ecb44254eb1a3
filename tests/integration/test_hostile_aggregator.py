"""A real aggregator process against hostile traffic and a poisoned state file (real Mosquitto).

The flood is `bench.hostile` at a small size: every kind of hostile message from ten registered
identities, a valid update half-way. The aggregator must stay up, count every message it
refused by reason, ack the valid update, keep a finite head, and restart on its state file.
A state file that an older release left with a non-finite head must be served again from the
last good head, by a real process, without crashing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aggregator.state_store import StateStore
from bench import hostile
from bench.synthetic_bundle import HEAD_SHAPES
from fleet_protocol.messages import GlobalModel, RoundAnnouncement
from fleet_protocol.mqtt_link import LinkConfig, MqttLink
from fleet_protocol.topics import model_topic, round_topic
from fleet_protocol.wire import decode_message, message_sha256

pytestmark = pytest.mark.integration


def test_a_flood_of_every_hostile_kind_is_counted_and_a_valid_update_still_lands(
    mosquitto: object, tmp_path: Path
) -> None:
    # Execute
    result = hostile.run(400, tmp_path)

    # Assert: every reason shows up; nothing reached the model; the process survived it
    reasons = set(result["rejected_by_reason"])
    assert {"malformed", "out_of_bounds", "stale", "wrong_topic", "unknown_device"} <= reasons
    assert reasons & {"chunk_evicted", "chunk_expired"}
    assert result["valid_update"]["acked"]
    assert result["aggregator_alive_after_flood"] and result["restart_serves"]
    assert result["model_version_after"] == 0 and result["model_finite_after"]
    assert result["rejected_total"] >= 400 - 10 * 4  # at most four partials per sender pending


def _poison(setup: hostile.Setup) -> None:
    """What an older release left: version 1 holding infinity, and a round open on it."""
    bad = [np.full(shape, np.inf, np.float32) for shape in HEAD_SHAPES]
    with StateStore(setup.state) as store:
        good = [np.zeros(shape, np.float32) for shape in HEAD_SHAPES]
        store.add_version(0, good, None, None, message_sha256(good), 0.0)
        store.open_round(1, 0, 0.0, 1.0, 2, {})
        store.close_round(1, 1, bad, "0" * 64, {}, 1.0)
        store.open_round(2, 1, 1.0, 2.0, 2, {})


def test_a_state_file_with_a_non_finite_head_rolls_back_in_a_real_process(
    tmp_path: Path,
) -> None:
    # Prepare
    setup = hostile.prepare(tmp_path)
    _poison(setup)
    from aggregator.broker import LocalBroker

    with LocalBroker() as broker:
        topics = (round_topic(hostile.FLEET), model_topic(hostile.FLEET, 2))
        watcher = MqttLink(LinkConfig(broker.url, "watcher", topics, persistent_session=False))

        # Execute
        process = hostile.start_aggregator(broker.url, setup.bundle, setup.state, setup.registry)
        try:
            with watcher:
                announced, model = _round_and_model(watcher)
            alive = process.poll() is None
        finally:
            hostile.stop(process)

    # Assert: the good head is served again as version 2, the round runs on it
    assert alive
    assert isinstance(announced, RoundAnnouncement) and announced.model_version == 2
    assert announced.round_id == 3
    assert all(np.all(w == 0.0) for w in model.weights)


def _round_and_model(link: MqttLink) -> tuple[RoundAnnouncement, GlobalModel]:
    """The retained round and model/2, in whichever order the broker delivers them."""
    seen: dict[str, object] = {}
    for _ in range(120):
        event = link.next_event(0.5)
        if event is not None and event.kind == "message" and event.payload:
            seen["model" if "/model/" in event.topic else "round"] = decode_message(event.payload)
        if len(seen) == 2:
            announced, model = seen["round"], seen["model"]
            assert isinstance(announced, RoundAnnouncement) and isinstance(model, GlobalModel)
            return announced, model
    raise AssertionError(f"only {sorted(seen)} published")
