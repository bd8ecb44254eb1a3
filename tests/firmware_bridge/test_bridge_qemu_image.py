"""The QEMU image and its budget: sizes from arm-none-eabi-size, and a firmware that does not
fit the nRF52840's 1 MB of flash next to its model partition fails to link."""

from __future__ import annotations

from pathlib import Path

import pytest
from qemu_support import CONFIG, FIXTURE_BACKBONE, require_toolchain

from firmware_bridge.errors import BridgeError
from firmware_bridge.firmware_build import PARTITION_SIZE, BuildRequest, FirmwareImage, build_image

pytestmark = pytest.mark.firmware


def test_image_fits_the_budget_and_reports_its_sizes(firmware_image: FirmwareImage) -> None:
    assert firmware_image.partition_bytes == PARTITION_SIZE
    assert 0 < firmware_image.flash_bytes <= 1024 * 1024 - PARTITION_SIZE
    assert 0 < firmware_image.ram_bytes <= 256 * 1024
    assert (firmware_image.elf.parent / "firmware.json").is_file()


def test_flash_overrun_fails_the_link(tmp_path: Path) -> None:
    require_toolchain()
    request = BuildRequest(CONFIG, tmp_path, runner_sources=(FIXTURE_BACKBONE,),
                           partition_size=1024 * 1024)  # fmt: skip
    with pytest.raises(BridgeError, match="FLASH"):
        build_image(request)
