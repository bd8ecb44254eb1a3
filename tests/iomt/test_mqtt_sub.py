"""`iomt mqtt sub` against a real Mosquitto: the project's messages as readable lines."""

from __future__ import annotations

import io

import numpy as np

from fleet_protocol.message_text import message_to_text
from fleet_protocol.messages import DeviceStatus, GlobalModel
from fleet_protocol.mqtt_link import LinkConfig, MqttLink
from fleet_protocol.topics import model_topic, status_topic
from fleet_protocol.wire import encode_message
from iomt.cli import main
from iomt.environment import Environment


def test_messages_become_one_readable_line() -> None:
    model = GlobalModel("w", 3, [np.zeros((4, 2), np.float32), np.zeros(2, np.float32)], 2, 3)
    line = message_to_text(model_topic("w", 3), encode_message(model))
    assert line == ("iomt/v1/w/model/3 global_model fleet=w model_version=3 weights=[4x2, 2]"
                    " parent_version=2 round_id=3")  # fmt: skip
    assert message_to_text("t", b"\x00\xff") == "t <2 bytes, not a fleet message: malformed>"
    assert message_to_text("t", b"") == "t <empty: retained message cleared>"


def test_sub_prints_a_retained_status_decoded(mosquitto) -> None:  # type: ignore[no-untyped-def]
    status = DeviceStatus("watch", "pi-1", True, 4, "", None, 51.0)
    publisher = LinkConfig(mosquitto.url, "sub-test-pub", persistent_session=False)
    with MqttLink(publisher) as link:
        link.publish(status_topic("watch", "pi-1"), encode_message(status), retain=True)
    out = io.StringIO()
    argv = ["mqtt", "sub", "--broker", mosquitto.url, "--fleet", "watch", "--count", "1"]
    assert main(argv, Environment(stdout=out, stderr=io.StringIO())) == 0
    expected = "device_status fleet=watch device_id=pi-1 online=True model_version=4 cpu_temp_c=51"
    assert out.getvalue() == f"iomt/v1/watch/status/pi-1 {expected}\n"
