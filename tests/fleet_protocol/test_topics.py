"""Topic names, their parsing, and refusal of ids that would break MQTT filters."""

from __future__ import annotations

import pytest

from fleet_protocol.errors import TopicError
from fleet_protocol.topics import (
    AGGREGATOR_ID,
    ack_topic,
    model_topic,
    parse_topic,
    round_topic,
    status_topic,
    subscription_topic,
    update_topic,
)


def test_topics_round_trip_through_parse() -> None:
    assert parse_topic(round_topic("ward-7")) == ("ward-7", "round", None)
    assert parse_topic(model_topic("ward-7", 12)) == ("ward-7", "model", "12")
    assert parse_topic(update_topic("ward-7", "dev_1")) == ("ward-7", "update", "dev_1")
    assert parse_topic(status_topic("ward-7", "dev_1")).kind == "status"
    assert ack_topic("ward-7", "d.2") == "iomt/v1/ward-7/ack/d.2"


def test_subscription_filters() -> None:
    assert subscription_topic("f", "update") == "iomt/v1/f/update/+"
    assert subscription_topic("f", "round") == "iomt/v1/f/round"


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "a b", "x" * 65, "é"])
def test_invalid_ids_rejected(bad: str) -> None:
    with pytest.raises(TopicError):
        update_topic("fleet", bad)
    with pytest.raises(TopicError):
        round_topic(bad)


def test_aggregator_id_reserved_for_devices() -> None:
    with pytest.raises(TopicError):
        update_topic("fleet", AGGREGATOR_ID)


@pytest.mark.parametrize(
    "topic",
    ["iomt/v2/f/round", "iomt/v1/f", "iomt/v1/f/model/x", "iomt/v1/f/update", "iomt/v1/f/foo/d"],
)
def test_foreign_topics_rejected(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(topic)


def test_negative_version_rejected() -> None:
    with pytest.raises(TopicError):
        model_topic("f", -1)
