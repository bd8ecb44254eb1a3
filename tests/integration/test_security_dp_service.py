"""Central DP in the real aggregator service over Mosquitto: epsilon per round, budget stop."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aggregator.broker import LocalBroker
from aggregator.core_config import AggregatorConfig
from aggregator.service import AggregatorService, link_subscriptions
from aggregator.state_store import StateStore
from aggregator.strategies.dp_fedavg import DpFedAvg, with_privacy_report
from fleet_protocol.differential_privacy import DpConfig, PrivacyBudgetExhaustedError
from fleet_protocol.messages import ModelUpdate, RoundAnnouncement
from fleet_protocol.mqtt_link import LinkConfig, MqttLink
from fleet_protocol.topics import round_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message

pytestmark = pytest.mark.integration

FLEET = "dp"
HEAD = [np.zeros((4, 2), np.float32), np.zeros(2, np.float32)]


def _run_service(url: str, state: Path, strategy: DpFedAvg, reports: list[dict[str, Any]],
                 outcome: queue.Queue[BaseException | None]) -> None:  # fmt: skip
    config = AggregatorConfig(FLEET, 5, 2, 60.0, codec="float32")
    with (
        StateStore(state) as store,
        MqttLink(LinkConfig(url, "agg-dp", link_subscriptions(FLEET))) as link,
    ):
        on_metrics = with_privacy_report(strategy, reports.append, lambda line: None)
        service = AggregatorService(config, link, store, strategy, HEAD, on_metrics=on_metrics)
        try:
            service.run()
            outcome.put(None)
        except BaseException as exc:  # handed to the test thread
            outcome.put(exc)


def test_epsilon_is_reported_each_round_and_the_budget_stops_training(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare: z = 1 spends epsilon 4.75, 7.09, 9.09 after 1, 2, 3 rounds (delta 1e-5)
    config = DpConfig(noise_multiplier=1.0, clip_norm=0.1, delta=1e-5, epsilon_budget=8.0)
    strategy = DpFedAvg(config, rng=np.random.default_rng(0))
    reports: list[dict[str, Any]] = []
    outcome: queue.Queue[BaseException | None] = queue.Queue()
    state = tmp_path / "agg.sqlite"
    thread = threading.Thread(target=_run_service, daemon=True,
                              args=(broker.url, state, strategy, reports, outcome))  # fmt: skip
    devices = MqttLink(
        LinkConfig(broker.url, "dp-devices", (round_topic(FLEET),), persistent_session=False)
    )
    devices.start()
    thread.start()

    # Execute: two devices answer every round with a large update (clipped to 0.1)
    for round_id in (1, 2):
        announcement = _announcement(devices, round_id)
        for device_id in ("a", "b"):
            delta = [np.full(w.shape, 5.0, np.float32) for w in HEAD]
            update = ModelUpdate(
                FLEET, round_id, announcement.model_version, device_id, round_id, 10, delta
            )
            devices.publish(update_topic(FLEET, device_id), encode_message(update, codec="float32"))
    stopped = outcome.get(timeout=60)
    devices.stop()

    # Assert
    assert isinstance(stopped, PrivacyBudgetExhaustedError)
    assert [r["dp_rounds"] for r in reports] == [1, 2]
    assert reports[0]["dp_epsilon"] == pytest.approx(4.753, abs=0.01)
    assert reports[1]["dp_epsilon"] == pytest.approx(7.088, abs=0.01)
    assert [r["dp_clipped"] for r in reports] == [2, 2]


def _announcement(link: MqttLink, round_id: int) -> RoundAnnouncement:
    while True:
        event = link.next_event(30.0)
        assert event is not None, f"no announcement of round {round_id}"
        if event.kind == "message" and event.payload:
            message = decode_message(event.payload, expected_type=RoundAnnouncement)
            assert isinstance(message, RoundAnnouncement)
            if message.round_id == round_id:
                return message
