"""A full federated run over real Mosquitto: one aggregator and three device processes."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from aggregator.state_store import StateStore
from bundle_format.reader import load_bundle
from edge_runtime.head import Head
from fleet_protocol.mqtt_link import LinkConfig, MqttLink
from iomt.cli import main
from iomt.environment import Environment

pytestmark = [pytest.mark.integration, pytest.mark.tf]

FLEET = "round-test"
DEVICES = 3
ROUNDS = 2


def _spy(url: str, fleet: str) -> tuple[MqttLink, list[bytes], threading.Event]:
    """Subscribe to everything under the fleet and keep every payload seen."""
    link = MqttLink(LinkConfig(url, "spy", ("#",), persistent_session=False))
    payloads: list[bytes] = []
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            event = link.next_event(0.1)
            if event is not None and event.kind == "message":
                payloads.append(event.payload)

    link.start()
    threading.Thread(target=drain, daemon=True).start()
    return link, payloads, stop


def _window_fingerprints(data: dict[str, np.ndarray]) -> list[bytes]:
    """Byte strings that would appear if any window (raw, or as float16) were published."""
    prints = []
    for window in data["X"]:
        prints.append(window.astype(np.float32).tobytes()[:24])
        prints.append(window.astype(np.float16).tobytes()[:16])
    return prints


def test_full_round_three_devices_no_raw_windows_on_the_wire(
    mosquitto, tiny_task, processes, tmp_path: Path
) -> None:
    # Prepare
    spy, payloads, stop_spy = _spy(mosquitto.url, FLEET)
    metrics_path = tmp_path / "metrics.jsonl"
    aggregator = [
        "aggregator", "--broker", mosquitto.url, "--fleet", FLEET,
        "--bundle", str(tiny_task.bundle_path), "--state", str(tmp_path / "agg.sqlite"),
        "--rounds", str(ROUNDS), "--min-clients", str(DEVICES), "--deadline", "60",
        "--strategy", "fedavg", "--codec", "int8", "--holdout", str(tiny_task.holdout_path),
        "--metrics-out", str(metrics_path), "--json",
    ]  # fmt: skip
    started = [processes.start("aggregator", aggregator)]
    for device in range(DEVICES):
        edge = [
            "edge", "--broker", mosquitto.url, "--fleet", FLEET, "--device-id", f"dev{device}",
            "--bundle", str(tiny_task.bundle_path), "--store", str(tmp_path / f"d{device}.sqlite"),
            "--replay", str(tiny_task.data_path), "--subject", str(device), "--speed", "0",
            "--max-rounds", str(ROUNDS), "--json",
        ]  # fmt: skip
        started.append(processes.start(f"dev{device}", edge))

    # Execute
    exit_codes = [process.finish(timeout_s=120) for process in started]
    stop_spy.set()
    spy.stop()

    # Assert
    assert exit_codes == [0] * (DEVICES + 1)
    rounds = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["participants"] == DEVICES and r["status"] == "aggregated" for r in rounds)
    assert all(r["rejected"] == {} and r["bytes_in"] > 0 and r["bytes_out"] > 0 for r in rounds)
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rounds)
    assert rounds[-1]["model_version"] == ROUNDS
    assert payloads, "the spy saw no traffic"
    wire = b"".join(payloads)
    assert not any(fp in wire for fp in _window_fingerprints(tiny_task.data))
    for device in range(DEVICES):
        lines = started[device + 1].output()
        records = [json.loads(line) for line in lines]
        assert any(r["event"] == "installed" and r["version"] == 2 for r in records)
    _check_status_and_export(tmp_path, tiny_task.bundle_path)


def _check_status_and_export(tmp_path: Path, bundle: Path) -> None:
    """`iomt aggregator status` and `export` on the finished state, in-process."""
    out = io.StringIO()
    env = Environment(stdout=out, stderr=io.StringIO())
    state = str(tmp_path / "agg.sqlite")
    assert main(["aggregator", "status", "--state", state, "--json"], env) == 0
    status = json.loads(out.getvalue())
    assert [v["version"] for v in status["versions"]] == [0, 1, 2]
    exported = tmp_path / "exported"
    args = [
        "aggregator",
        "export",
        "--state",
        state,
        "--bundle",
        str(bundle),
        "--out",
        str(exported),
    ]
    assert main(args, env) == 0
    head = Head.from_npz(load_bundle(exported).verified_head_path)
    with StateStore(state) as store:
        for got, want in zip(head.weights, store.load_weights(2), strict=True):
            np.testing.assert_array_equal(got, want)
