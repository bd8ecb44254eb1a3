"""The host driver and `iomt bridge` against the C firmware under QEMU, over a real pty, with
the emulator's line faults (bit flips, drops, truncation) injected between them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from bridge_fakes import write_window_dataset
from qemu_support import board, fixture_model, flash_file, make_head

from firmware_bridge.faults import FaultConfig
from firmware_bridge.firmware_build import FirmwareImage
from firmware_bridge.host_driver import HostDriver
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.protocol.reliability import RetryPolicy
from firmware_bridge.qemu_service import QemuService
from firmware_bridge.sensor_source import ReplaySource, load_window_dataset
from firmware_bridge.transport import PtyEndpoint

pytestmark = pytest.mark.firmware


@pytest.fixture
def faulty_service(firmware_image: FirmwareImage, tmp_path: Path) -> Iterator[QemuService]:
    flash = flash_file(tmp_path / "flash.bin", firmware_image, fixture_model(0), make_head(0))
    sensors = ReplaySource(load_window_dataset(write_window_dataset(tmp_path / "w.npz")))
    faults = FaultConfig(bitflip=0.02, drop=0.02, truncate=0.02, seed=5)
    mcu = board(firmware_image, flash, tmp_path / "qemu").boot()
    with QemuService(mcu, PtyEndpoint(), sensors, faults) as service:
        yield service


def test_upload_infer_and_head_over_a_faulty_line(faulty_service: QemuService) -> None:
    # Prepare
    path = faulty_service.endpoint.path  # type: ignore[attr-defined]
    model = fixture_model(seed=8)
    window = np.random.default_rng(3).integers(-50, 50, (16, 3), dtype=np.int8)
    head = make_head(seed=4, version=9)
    # Execute
    policy = RetryPolicy(timeout_s=0.2, max_attempts=30)
    with HostDriver.open(path, policy=policy) as driver:
        results = [driver.infer(window) for _ in range(20)]
        report = driver.upload_model(model, chunk_size=8)
        driver.set_head(head.version, list(head.tensors))
        returned = driver.get_head()
        info = driver.info()
    # Assert
    assert report.sha256 == hashlib.sha256(model).hexdigest() == info.model_sha256.hex()
    assert len({r.scores.tobytes() for r in results}) == 1  # every retry answered alike
    assert returned.version == 9
    for sent, got in zip(head.tensors, returned.tensors, strict=True):
        np.testing.assert_array_equal(sent, got)
    stats = faulty_service.injector.stats
    assert stats.bitflips and stats.drops and stats.truncations, "faults were not exercised"
    assert driver.transfer.stats.retransmissions > 0


def test_stream_over_a_faulty_line_delivers_most_frames(faulty_service: QemuService) -> None:
    # Prepare
    path = faulty_service.endpoint.path  # type: ignore[attr-defined]
    frames: list[cmd.SensorFrame] = []
    policy = RetryPolicy(timeout_s=0.2, max_attempts=30)
    # Execute: 16-sample windows at 200 Hz, 8 samples a frame
    with HostDriver.open(path, policy=policy) as driver, driver.stream(frames.append, 8):
        labels = [driver.label_events.get(timeout=10) for _ in range(12)]
    # Assert: damaged frames are dropped whole; the rest keep the sensor's clock (frames before
    # the first press may be short: the stream starts in the middle of a window)
    assert {event.label for event in labels} == {0, 1, 2}
    whole = [frame for frame in frames if frame.timestamp_us >= labels[0].timestamp_us]
    assert len(whole) >= 12 and all(frame.samples.shape == (8, 3) for frame in whole)
    steps = [(frame.timestamp_us - whole[0].timestamp_us) / 40_000 for frame in whole]
    assert steps == [round(step) for step in steps] and steps == sorted(set(steps))
