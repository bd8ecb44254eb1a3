"""The NATS side of workers' queue group: server lists and MQTT topic <-> NATS subject."""

from __future__ import annotations

import pytest

from aggregator.nats_queue import NatsQueueError, nats_servers, subject_of, topic_of
from fleet_protocol.topics import subscription_topic, update_topic


def test_a_server_list_is_normalised_and_keeps_its_order() -> None:
    servers = nats_servers("nats://b:4223, nats://a ,,")
    assert servers == ("nats://b:4223", "nats://a:4222")


@pytest.mark.parametrize(
    "urls", ["", " , ", "mqtt://a:1883", "nats://:4222", "nats://a:x", "nats://a:4222/path", "a"]
)
def test_what_is_not_a_nats_url_is_refused_in_one_line(urls: str) -> None:
    with pytest.raises(NatsQueueError) as raised:
        nats_servers(urls)
    assert "\n" not in str(raised.value)


def test_the_update_filter_and_a_device_topic_map_to_nats_and_back() -> None:
    assert subject_of(subscription_topic("ward-3", "update")) == "iomt.v1.ward-3.update.*"
    assert subject_of("iomt/v1/f/model/#") == "iomt.v1.f.model.>"
    topic = update_topic("ward-3", "dev_07")
    assert topic_of(subject_of(topic)) == topic == "iomt/v1/ward-3/update/dev_07"
