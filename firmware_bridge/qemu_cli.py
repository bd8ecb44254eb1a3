"""Builds the QEMU firmware on a pty from `iomt bridge emulate --qemu` options.

The bundle's backbone and head are flashed into the partition file before boot, as a
programmer writes a board's flash; a `--flash` file that exists already is kept as it is (the
board remembers what it was last sent).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from firmware_bridge.emulator_cli import sensors_from_args
from firmware_bridge.emulator_model import load_head_tensors
from firmware_bridge.errors import BridgeError
from firmware_bridge.faults import parse_fault_spec
from firmware_bridge.firmware_build import IMAGE_FILE, PARTITION_SIZE, REPORT_FILE
from firmware_bridge.flash_image import PartitionLayout, partition_image
from firmware_bridge.protocol.commands import HeadSet
from firmware_bridge.qemu_mcu import QemuMcu, QemuOptions
from firmware_bridge.qemu_service import QemuService
from firmware_bridge.transport import PtyEndpoint

DEFAULT_BUILD_DIR = Path("build/firmware")
BACKBONE_FILE = "backbone.int8.tflite"


@dataclass(frozen=True)
class FirmwareBundle:
    """What the QEMU board is flashed with from a bundle directory."""

    backbone: bytes
    head_payload: bytes
    channels: int


def load_firmware_bundle(bundle: Path) -> FirmwareBundle:
    """The backbone, the head as a HEAD_SET payload (version 0) and the channel count."""
    try:
        manifest = json.loads((bundle / "manifest.json").read_text())
        backbone = (bundle / BACKBONE_FILE).read_bytes()
    except (OSError, ValueError) as exc:
        raise BridgeError(f"cannot read bundle {bundle}: {exc}") from None
    head = load_head_tensors(bundle)
    payload = HeadSet(0, head).to_payload() if head else b""
    return FirmwareBundle(backbone, payload, len(manifest.get("channels", [])))


def default_image(bundle: Path) -> Path:
    """Where `make firmware BUNDLE=...` puts the image of a bundle: named as make names it,
    `$(notdir $(abspath BUNDLE))` (a symlinked bundle keeps the link's name)."""
    return DEFAULT_BUILD_DIR / Path(os.path.abspath(bundle)).name / IMAGE_FILE


def partition_size(image: Path) -> int:
    """The image's partition size from its `firmware.json` (the default when absent)."""
    report = image.parent / REPORT_FILE
    if report.is_file():
        return int(json.loads(report.read_text()).get("partition_bytes", PARTITION_SIZE))
    return PARTITION_SIZE


def flash_bundle(flash: Path, image: Path, bundle: FirmwareBundle) -> None:
    """Write the bundle's backbone and head into a fresh partition file."""
    layout = PartitionLayout(partition_size(image))
    flash.write_bytes(partition_image(layout, bundle.backbone, bundle.head_payload or None))


def build_qemu_emulator(args: argparse.Namespace) -> tuple[QemuService, PtyEndpoint]:
    """A QEMU board (booted) relayed to a fresh pty; the service is not started."""
    if not args.bundle:
        raise BridgeError("--qemu needs --bundle (the image runs that bundle's backbone)")
    bundle_dir = Path(args.bundle)
    bundle = load_firmware_bundle(bundle_dir)
    image = Path(args.image) if args.image else default_image(bundle_dir)
    workdir = Path(tempfile.mkdtemp(prefix="iomt-qemu-"))
    try:
        return _boot(args, bundle, image, workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _boot(
    args: argparse.Namespace, bundle: FirmwareBundle, image: Path, workdir: Path
) -> tuple[QemuService, PtyEndpoint]:
    flash = Path(args.flash) if args.flash else workdir / "flash.bin"
    mcu = QemuMcu(QemuOptions(image=image, flash=flash, workdir=workdir))
    sensors = sensors_from_args(args)
    if len(sensors.channels) != bundle.channels:
        raise BridgeError(
            f"sensor has {len(sensors.channels)} channels, the bundle reads {bundle.channels}"
        )
    if not args.flash or flash.stat().st_size == 0:
        flash_bundle(flash, image, bundle)
    faults = parse_fault_spec(args.fault, seed=args.seed)
    endpoint = PtyEndpoint(baudrate=args.baud)
    return QemuService(mcu.boot(), endpoint, sensors, faults), endpoint
