"""Devices of a simulation that are microcontrollers: the C firmware under QEMU, one board per
device, behind `iomt edge --serial PORT --train-on-mcu` (`--mcu-devices N`).

The board runs the bundle's backbone in the real firmware image (built once per bundle with the
ARM toolchain, `firmware_bridge.firmware_build`) and trains every round itself
(docs/serial-protocol.md section 7). Its host replays the device's windows as a Pi device does,
so the fleet differs from an all-Pi fleet only in where the rounds are trained.
"""

from __future__ import annotations

import json
from pathlib import Path

from iomt.simulation.processes import ProcessGroup

BOARD_START_S = 60.0
MCU_IMAGE_DIR = "firmware"


def build_mcu_image(bundle: Path, cache_dir: Path) -> Path:
    """The firmware image for `bundle` (kept in the cache next to the bundle's name)."""
    from firmware_bridge.firmware_build import (
        IMAGE_FILE,
        BuildRequest,
        build_image,
        config_from_manifest,
    )

    out = cache_dir / MCU_IMAGE_DIR / bundle.resolve().name
    image = out / IMAGE_FILE
    if image.exists() and image.stat().st_mtime > (bundle / "manifest.json").stat().st_mtime:
        return image
    manifest = json.loads((bundle / "manifest.json").read_text())
    request = BuildRequest(
        config_from_manifest(manifest), out, backbone=bundle / "backbone.int8.tflite"
    )
    return build_image(request).elf


def _announces_port(line: str) -> bool:
    return line.startswith("{") and '"port"' in line


def board_name(device_id: str) -> str:
    """The process name of a device's board in the fleet's process group and logs."""
    return f"{device_id}-mcu"


def start_board(
    group: ProcessGroup, device_id: str, bundle: Path, image: Path, replay: Path
) -> str:
    """Boot the device's QEMU board (`iomt bridge emulate --qemu`); returns its pty.

    Its sensor is the device's replay (so its channels are the bundle's); the host never asks
    it to stream: the host replays the windows itself and the board only trains.
    """
    args = ["bridge", "emulate", "--board", "nano33ble", "--bundle", str(bundle), "--qemu",
            "--image", str(image), "--replay", str(replay), "--json"]  # fmt: skip
    child = group.start(board_name(device_id), args)
    line = child.wait_for_line(_announces_port, BOARD_START_S)
    if line is None:
        raise RuntimeError(
            f"the QEMU board of {device_id} did not come up ({child.last_log_line()});"
            f" see {child.log_path}"
        )
    return str(json.loads(line)["port"])
