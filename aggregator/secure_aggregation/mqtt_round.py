"""Drive a coordinator or a participant over an `MqttLink` (the only I/O of this package).

Both loops run in the caller's thread: take an event from the link's queue, hand it to the
state machine, publish what it returns. No publishing from paho's callback thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from aggregator.secure_aggregation.coordinator import SecAggCoordinator
from fleet_protocol.mqtt_link import LinkEvent
from fleet_protocol.publish import Publish
from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.secure_aggregation.participant import SecAggParticipant
from fleet_protocol.secure_aggregation.transport import is_phase_topic

POLL_S = 0.05


class Link(Protocol):
    """What the loops need of `fleet_protocol.mqtt_link.MqttLink`."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None: ...
    def next_event(self, timeout_s: float) -> LinkEvent | None: ...


def _publish_all(link: Link, messages: list[Publish]) -> None:
    for message in messages:
        link.publish(message.topic, message.payload, retain=message.retain)


def run_coordinator(
    link: Link,
    coordinator: SecAggCoordinator,
    timeout_s: float,
    on_other: Callable[[LinkEvent], None] | None = None,
) -> None:
    """Run one round to its end (result or error); `timeout_s` bounds the whole round.

    Events on other topics (device statuses, say) go to `on_other`.
    """
    give_up = time.monotonic() + timeout_s
    _publish_all(link, coordinator.start())
    while not coordinator.done:
        if time.monotonic() > give_up:
            coordinator.error = coordinator.error or f"round not finished in {timeout_s:.0f} s"
            return
        event = link.next_event(POLL_S)
        if event is not None and event.kind == "message" and is_phase_topic(event.topic):
            _publish_all(link, coordinator.handle(event.topic, event.payload))
        elif event is not None and on_other is not None:
            on_other(event)
        _publish_all(link, coordinator.tick())


def run_participant(link: Link, participant: SecAggParticipant, stop: threading.Event,
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
