"""A federated round where one device's sensor is the C firmware under QEMU: `iomt bridge
emulate --qemu` replays that device's recordings through the firmware's sensor UART, and
`iomt edge --serial` takes its windows and button labels from the firmware's SENSOR_FRAMEs and
LABEL_EVENTs, next to a replaying device, over a real Mosquitto."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.firmware_build import BuildRequest, build_image, config_from_manifest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware_bridge"))
from qemu_support import FIXTURE_BACKBONE, require_toolchain

pytestmark = [pytest.mark.integration, pytest.mark.tf, pytest.mark.firmware]
FLEET = "qemu-round"


def test_round_with_a_qemu_microcontroller_as_one_device(
    mosquitto, tiny_task, processes, tmp_path: Path
) -> None:
    # Prepare: the image for this bundle, and the QEMU board replaying subject 1
    require_toolchain()
    manifest = json.loads((tiny_task.bundle_path / "manifest.json").read_text())
    request = BuildRequest(config_from_manifest(manifest), (FIXTURE_BACKBONE,), tmp_path / "fw")
    image = build_image(request)
    subject = {k: v[tiny_task.data["subject"] == 1] if k in ("X", "y", "subject") else v
               for k, v in tiny_task.data.items()}  # fmt: skip
    np.savez(tmp_path / "subject1.npz", **subject)
    emulate = ["bridge", "emulate", "--qemu", "--json", "--bundle", str(tiny_task.bundle_path),
               "--image", str(image.elf), "--replay", str(tmp_path / "subject1.npz")]  # fmt: skip
    board = processes.start("qemu", emulate)
    port = json.loads(board.wait_for('"port"'))["port"]
    metrics = tmp_path / "metrics.jsonl"
    common = ["--broker", mosquitto.url, "--fleet", FLEET, "--bundle", str(tiny_task.bundle_path)]
    aggregator = ["aggregator", *common[:4], "--bundle", str(tiny_task.bundle_path),
                  "--state", str(tmp_path / "agg.sqlite"), "--rounds", "1", "--min-clients", "2",
                  "--deadline", "120", "--metrics-out", str(metrics), "--json"]  # fmt: skip
    replaying = ["edge", *common, "--device-id", "replay", "--store", str(tmp_path / "r.sqlite"),
                 "--replay", str(tiny_task.data_path), "--subject", "0", "--speed", "0",
                 "--max-rounds", "1", "--json"]  # fmt: skip
    on_qemu = ["edge", *common, "--device-id", "mcu", "--store", str(tmp_path / "m.sqlite"),
               "--serial", port, "--min-samples", "4", "--max-rounds", "1", "--json"]  # fmt: skip
    # Execute
    started = [processes.start(name, args) for name, args in
               (("aggregator", aggregator), ("replay", replaying), ("mcu", on_qemu))]  # fmt: skip
    exit_codes = [process.finish(timeout_s=180) for process in started]
    # Assert
    assert exit_codes == [0, 0, 0]
    rounds = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert rounds[0]["participants"] == 2 and rounds[0]["status"] == "aggregated"
    assert any('"event": "installed", "version": 1' in line for line in started[2].output())
