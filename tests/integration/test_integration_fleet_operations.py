"""Operating a real fleet: an aggregator and two device processes over real Mosquitto.

`iomt fleet status` reads what the aggregator heard (online, version, last round, health);
SIGTERM stops a device cleanly: it publishes "offline" (retained) and exits 0; log lines are
structured (`ts`, `level`, `event`).
"""

from __future__ import annotations

import io
import json
import signal
from pathlib import Path

import pytest

from fleet_protocol.messages import DeviceStatus
from fleet_protocol.mqtt_link import LinkConfig, MqttLink
from fleet_protocol.topics import status_topic
from fleet_protocol.wire import decode_message
from iomt.cli import main
from iomt.environment import Environment

pytestmark = [pytest.mark.integration, pytest.mark.tf]

FLEET = "ops-fleet"


def _edge(url: str, task, device: int, tmp_path: Path) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        "edge", "--broker", url, "--fleet", FLEET, "--device-id", f"dev{device}",
        "--bundle", str(task.bundle_path), "--store", str(tmp_path / f"d{device}.sqlite"),
        "--replay", str(task.data_path), "--subject", str(device), "--speed", "0", "--json",
    ]  # fmt: skip


def _fleet_status(state: Path) -> dict[str, dict[str, object]]:
    out = io.StringIO()
    code = main(["fleet", "status", "--state", str(state), "--json"], Environment(stdout=out))
    assert code == 0
    return {row["device_id"]: row for row in json.loads(out.getvalue())}


def _wait_offline(link: MqttLink, device: str) -> DeviceStatus:
    """The first status of `device` that says offline (raises after 60 s without one)."""
    while True:
        event = link.next_event(60.0)
        assert event is not None, f"no offline status from {device} in 60 s"
        if event.kind != "message" or not event.payload:
            continue
        status = decode_message(event.payload, expected_type=DeviceStatus)
        assert isinstance(status, DeviceStatus)
        if not status.online:
            return status


def test_fleet_status_then_sigterm_publishes_offline_and_exits_zero(
    mosquitto, tiny_task, processes, tmp_path: Path
) -> None:
    # Prepare: one round with both devices, the devices keep running afterwards
    state = tmp_path / "agg.sqlite"
    aggregator = processes.start("aggregator", [
        "aggregator", "--broker", mosquitto.url, "--fleet", FLEET,
        "--bundle", str(tiny_task.bundle_path), "--state", str(state), "--rounds", "1",
        "--min-clients", "2", "--deadline", "60", "--holdout", str(tiny_task.holdout_path),
        "--promotion-margin", "1.0", "--json",
    ])  # fmt: skip
    devices = [processes.start(f"dev{d}", _edge(mosquitto.url, tiny_task, d, tmp_path))
               for d in (0, 1)]  # fmt: skip
    closed = json.loads(aggregator.wait_for('"event": "round_closed"', timeout_s=120))
    assert aggregator.finish(timeout_s=60) == 0

    # Execute
    fleet = _fleet_status(state)
    spy = MqttLink(LinkConfig(mosquitto.url, "ops-spy", (status_topic(FLEET, "dev0"),),
                              persistent_session=False)).start()  # fmt: skip
    devices[0].popen.send_signal(signal.SIGTERM)
    offline = _wait_offline(spy, "dev0")
    spy.stop()

    # Assert
    assert closed["status"] == "aggregated" and closed["participants"] == 2
    assert {"ts", "level"} <= set(closed) and closed["best_accuracy"] is not None
    assert sorted(fleet) == ["dev0", "dev1"]
    for row in fleet.values():
        assert row["online"] and row["last_round"] == 1 and row["rejections"] == {}
        assert row["free_disk_bytes"] and row["store_bytes"] and row["outbox_backlog"] == 0
    assert offline.device_id == "dev0"
    assert devices[0].finish(timeout_s=60) == 0
    lines = [json.loads(line) for line in devices[0].output()]
    connected = [line for line in lines if line["event"] == "connected"]
    assert len(connected) == 1 and connected[0]["level"] == "info"
    assert lines[-1]["event"] == "stop"


def test_subject_missing_from_the_data_is_a_one_line_error_and_writes_nothing(
    tiny_task, tmp_path: Path
) -> None:
    err = io.StringIO()
    store = tmp_path / "d.sqlite"
    args = _edge("mqtt://127.0.0.1:9", tiny_task, 0, tmp_path)
    args[args.index("--subject") + 1] = "99"
    code = main(args, Environment(stdout=io.StringIO(), stderr=err))
    assert code == 2
    assert err.getvalue().strip().splitlines() == [
        f"iomt edge: error: --subject 99: no windows in {tiny_task.data_path} (subjects 0-2)"
    ]
    assert not store.exists() and not store.with_name(store.name + ".d").exists()
