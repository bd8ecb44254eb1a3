"""A worker's update intake through libmosquitto, on a real Mosquitto: messages reach the link
queue as paho's would, a shared group splits them, and a member that leaves gets no more."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aggregator.mosquitto_feed import MosquittoFeed, available, usable_for
from aggregator.worker_service import shared_update_topic
from fleet_protocol.event_queue import BoundedEventQueue
from fleet_protocol.mqtt_link import LinkConfig, LinkEvent, MqttLink
from fleet_protocol.topics import update_topic

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not available(), reason="pymosquitto or libmosquitto1 is not installed"),
]


def _drain(queue: BoundedEventQueue[LinkEvent], count: int) -> list[LinkEvent]:
    events = []
    while len(events) < count:
        event = queue.get(10.0)
        assert event is not None, f"{len(events)} of {count} messages arrived"
        events.append(event)
    return events


def _messages(queue: BoundedEventQueue[LinkEvent], count: int) -> list[LinkEvent]:
    """The next `count` messages (connection events skipped)."""
    messages: list[LinkEvent] = []
    while len(messages) < count:
        event = queue.get(10.0)
        assert event is not None, f"{len(messages)} of {count} messages arrived"
        if event.kind == "message":
            messages.append(event)
    return messages


def _publish(url: str, fleet: str, devices: range) -> None:
    with MqttLink(LinkConfig(url, f"{fleet}-devices", persistent_session=False)) as link:
        for i in devices:
            link.publish(update_topic(fleet, f"d{i}"), bytes([i]) * 5000)


def test_updates_arrive_as_link_events_and_a_group_splits_them(mosquitto) -> None:  # type: ignore[no-untyped-def]
    # Prepare: two members of one fleet's worker group
    fleet = "feed"
    first, second = BoundedEventQueue[LinkEvent](), BoundedEventQueue[LinkEvent]()
    topic = shared_update_topic(fleet)
    with MosquittoFeed(mosquitto.url, "feed-w1", topic, first), \
            MosquittoFeed(mosquitto.url, "feed-w2", topic, second):  # fmt: skip
        # Execute
        _publish(mosquitto.url, fleet, range(20))
        got = _drain(first, 10) + _drain(second, 10)
    # Assert: every update once, with its topic and bytes, and each member took a share
    assert sorted(e.topic for e in got) == sorted(update_topic(fleet, f"d{i}") for i in range(20))
    assert all(e.kind == "message" and e.payload == e.payload[:1] * 5000 for e in got)
    assert first.get(0.2) is None and second.get(0.0) is None


def test_a_member_that_left_gets_nothing_more(mosquitto) -> None:  # type: ignore[no-untyped-def]
    # Prepare: w1 joins and leaves (a clean session: its share ends with its connection)
    fleet = "leave"
    gone, staying = BoundedEventQueue[LinkEvent](), BoundedEventQueue[LinkEvent]()
    topic = shared_update_topic(fleet)
    with MosquittoFeed(mosquitto.url, "leave-w2", topic, staying):
        with MosquittoFeed(mosquitto.url, "leave-w1", topic, gone):
            pass
        # Execute
        _publish(mosquitto.url, fleet, range(10))
        got = _drain(staying, 10)
    # Assert
    assert len({e.topic for e in got}) == 10
    assert gone.get(0.0) is None


@pytest.mark.parametrize(
    ("url", "tls", "usable"),
    [
        ("mqtt://127.0.0.1:1883", False, True),
        ("mqtt://127.0.0.1:1883?mqtt=3.1.1", False, True),
        ("mqtts://127.0.0.1:8883", False, False),
        ("mqtt://127.0.0.1:1883", True, False),
        ("mqtt://a:1883,mqtt://b:1883", False, False),
        ("http://a:1883", False, False),
    ],
)
def test_libmosquitto_serves_one_plain_broker_only(url: str, tls: bool, usable: bool) -> None:
    assert usable_for(url, tls) is usable


def test_asking_for_libmosquitto_where_it_cannot_serve_is_one_line() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "iomt.cli", "aggregator", "--broker", "mqtt://a:1,mqtt://b:1",
         "--fleet", "f", "--state", "unused.sqlite", "--role", "worker", "--worker-id", "w1",
         "--update-client", "libmosquitto"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "--update-client libmosquitto takes one plain" in lines[0]


def test_acks_go_out_through_libmosquitto_and_partial_sums_through_paho(mosquitto) -> None:  # type: ignore[no-untyped-def]
    # Prepare: a worker's two connections, and a spy on acks and partial sums
    from aggregator.mosquitto_feed import FeedLink
    from fleet_protocol.topics import ack_topic, partial_topic, subscription_topic

    fleet = "acks"
    spy_topics = (subscription_topic(fleet, "ack"), subscription_topic(fleet, "partial"))
    spy_config = LinkConfig(mosquitto.url, "acks-spy", spy_topics, persistent_session=False)
    paho_config = LinkConfig(mosquitto.url, "acks-w1", (), persistent_session=False)
    with MqttLink(spy_config) as spy, MqttLink(paho_config) as paho_link, \
            MosquittoFeed(mosquitto.url, "acks-w1-updates", shared_update_topic(fleet),
                          paho_link.events) as feed:  # fmt: skip
        link = FeedLink(paho_link, feed)
        # Execute
        link.publish(ack_topic(fleet, "d1"), b"ack", wait=False)
        link.publish(partial_topic(fleet, "w1"), b"sum", retain=True, wait=False)
        got = _messages(spy.events, 2)
        paho_bytes = paho_link.bytes_out
    # Assert: both arrived; only the partial sum went through paho
    assert sorted((e.topic, e.payload) for e in got) == sorted(
        [(ack_topic(fleet, "d1"), b"ack"), (partial_topic(fleet, "w1"), b"sum")]
    )
    assert paho_bytes == len(b"sum")
