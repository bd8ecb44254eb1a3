"""The bounded queue between paho's thread and the owner: budgets, counted drops, control events."""

from __future__ import annotations

from fleet_protocol.event_queue import BoundedEventQueue


def test_messages_beyond_the_count_or_byte_budget_are_dropped_and_counted() -> None:
    # Prepare
    events: BoundedEventQueue[str] = BoundedEventQueue(max_messages=3, max_bytes=100)

    # Execute
    kept = [events.put_message(f"m{i}", 10, "update") for i in range(5)]
    too_big = events.put_message("big", 90, "status")
    events.put_control("connected")  # never dropped, even when full

    # Assert
    assert kept == [True, True, True, False, False] and not too_big
    assert events.dropped == {"update": 2, "status": 1}
    assert [events.get(0.0) for _ in range(5)] == ["m0", "m1", "m2", "connected", None]
    assert events.queued_bytes == 0 and events.put_message("again", 10, "update")


def test_one_topic_cannot_crowd_out_the_others() -> None:
    events: BoundedEventQueue[str] = BoundedEventQueue(max_bytes=1000, max_bytes_per_key=300)
    flood = [events.put_message("x", 100, "update", key="update/evil") for _ in range(10)]
    honest = events.put_message("valid", 100, "update", key="update/good")
    assert flood.count(True) == 3 and honest
    assert [events.get(0.0) for _ in range(4)] == ["x", "x", "x", "valid"]
    assert events.put_message("x", 300, "update", key="update/evil")  # room again once read


def test_two_empty_payloads_on_one_topic_are_both_delivered() -> None:
    # Prepare: a cleared retained model arrives twice (session redelivery, then the retained
    # copy on re-subscribing after a failover to another cluster node)
    events: BoundedEventQueue[str] = BoundedEventQueue()
    topic = "iomt/v1/f/model/0"

    # Execute
    queued = [events.put_message(f"empty{i}", 0, "model", key=topic) for i in range(2)]

    # Assert
    assert queued == [True, True]
    assert [events.get(0.0), events.get(0.0)] == ["empty0", "empty1"]
    assert events.queued_bytes == 0
