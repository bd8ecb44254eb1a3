"""The host driver against the emulated MCU: in memory for speed, over a real pty with faults."""

from __future__ import annotations

import hashlib
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from bridge_fakes import FakeRuntime

from firmware_bridge.emulated_mcu import EmulatedMcu
from firmware_bridge.emulator_model import EmulatorModel
from firmware_bridge.emulator_service import EmulatorService
from firmware_bridge.errors import (
    ConnectionLostError,
    DeviceError,
    DeviceTimeout,
    ModelUploadError,
    PortError,
)
from firmware_bridge.faults import FaultConfig
from firmware_bridge.host_driver import HostDriver
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.protocol.reliability import RetryPolicy
from firmware_bridge.sensor_source import ReplaySource, load_window_dataset
from firmware_bridge.transport import PtyEndpoint, memory_link
from hardware.board_profiles import get_board


class RecordingRuntime(FakeRuntime):
    """Fake runtime that records every model the firmware installs."""

    installed: ClassVar[list[bytes]] = []

    def __init__(self, model_bytes: bytes, arena_bytes: int) -> None:
        super().__init__(model_bytes, arena_bytes)
        RecordingRuntime.installed.append(model_bytes)


def test_info_and_infer_over_memory(memory_driver: HostDriver) -> None:
    info = memory_driver.info()
    assert info.board == "nano33ble" and info.has_model
    result = memory_driver.infer(np.full((16, 3), 2, np.int8))
    assert result.predicted_class == 0 and result.scores.tolist() == [32, 32, 32]


def test_device_error_is_raised_with_code(memory_driver: HostDriver) -> None:
    with pytest.raises(DeviceError, match="SHA-256 mismatch") as caught:
        memory_driver.request(cmd.ModelBegin(3, bytes(32)), cmd.Ack)
        for offset in range(3):
            memory_driver.request(cmd.ModelChunk(offset, b"x"), cmd.Ack)
        memory_driver.request(cmd.ModelCommit(), cmd.Ack)
    assert caught.value.code == cmd.ErrorCode.HASH_MISMATCH


def test_stream_and_label_events(memory_driver: HostDriver) -> None:
    frames: queue.Queue[cmd.SensorFrame] = queue.Queue()
    with memory_driver.stream(frames.put, samples_per_frame=4):
        first = frames.get(timeout=5)
        label = memory_driver.label_events.get(timeout=5)
    assert first.samples.shape == (4, 3) and first.samples.dtype == np.float32
    assert label.label == 0
    pressed = memory_driver.request_label_event(timeout=5)
    assert 0 <= pressed.label < 3


def test_head_round_trip(memory_driver: HostDriver) -> None:
    memory_driver.set_head(7, [np.ones((4, 3)), np.zeros(3)])
    head = memory_driver.get_head()
    assert head.version == 7 and head.tensors[0].shape == (4, 3)


def test_silent_device_times_out() -> None:
    host_end, _device_end = memory_link()
    driver = HostDriver(host_end, RetryPolicy(timeout_s=0.02, max_attempts=3))
    with pytest.raises(DeviceTimeout, match="after 3 attempts"):
        driver.connect()
    driver.close()


def test_missing_port_is_one_line_error() -> None:
    with pytest.raises(PortError, match="cannot open serial port /nonexistent/tty"):
        HostDriver.open("/nonexistent/tty")


@pytest.fixture
def faulty_pty(replay_path: Path) -> Iterator[tuple[EmulatorService, str]]:
    RecordingRuntime.installed = []
    sensors = ReplaySource(load_window_dataset(replay_path))
    mcu = EmulatedMcu(get_board("nano33ble"), None, sensors, model_loader=RecordingRuntime)
    endpoint = PtyEndpoint()
    faults = FaultConfig(bitflip=0.01, drop=0.01, seed=5)
    with EmulatorService(mcu, endpoint, faults) as service:
        yield service, endpoint.path


@pytest.mark.integration
def test_upload_over_real_pty_with_bitflips_and_drops(
    faulty_pty: tuple[EmulatorService, str],
) -> None:
    # Prepare
    service, path = faulty_pty
    model = np.random.default_rng(1).integers(0, 256, 48_000, dtype=np.uint8).tobytes()
    seen: list[int] = []
    # Execute
    with HostDriver.open(path, policy=RetryPolicy(timeout_s=0.1, max_attempts=20)) as driver:
        report = driver.upload_model(model, lambda done, total: seen.append(done), chunk_size=512)
        info = driver.info()
    # Assert
    digest = hashlib.sha256(model).hexdigest()
    assert report.sha256 == digest and info.model_sha256.hex() == digest
    assert [hashlib.sha256(m).hexdigest() for m in RecordingRuntime.installed] == [digest]
    assert seen[-1] == len(model)
    injected = service.injector.stats
    assert injected.bitflips + injected.drops > 0, "faults were not exercised"


@pytest.mark.integration
def test_upload_survives_device_resets(replay_path: Path) -> None:
    RecordingRuntime.installed = []
    mcu = EmulatedMcu(get_board("esp32s3"), None, None, model_loader=RecordingRuntime)
    endpoint = PtyEndpoint()
    model = bytes(range(256)) * 40
    with EmulatorService(mcu, endpoint, FaultConfig(reset=0.02, seed=0)):
        driver = HostDriver.open(endpoint.path, policy=RetryPolicy(timeout_s=0.1))
        try:
            report = driver.upload_model(model, chunk_size=256)
        except ModelUploadError:
            pytest.fail("upload did not recover from device resets")
        finally:
            driver.close()
    assert report.sha256 == hashlib.sha256(model).hexdigest()
    assert mcu.resets > 0


def test_emulator_model_without_model_reports_no_hash(replay_path: Path) -> None:
    mcu = EmulatedMcu(get_board("nano33ble"), EmulatorModel(b"m"), None, model_loader=FakeRuntime)
    info = mcu.info()
    assert info.has_model and info.window_length == 16
    assert not EmulatedMcu(get_board("nano33ble")).info().has_model


def test_lost_link_is_reported_once_and_requests_fail(mcu: EmulatedMcu) -> None:
    host_end, device_end = memory_link()
    service = EmulatorService(mcu, device_end).start()
    driver = HostDriver(host_end, RetryPolicy(timeout_s=0.2))
    driver.connect()
    service.close()  # the device end goes away (cable pulled)
    with pytest.raises(ConnectionLostError):
        driver.info()
    driver.close()  # joins the reader, which has seen the link go
    assert isinstance(driver.lost, ConnectionLostError) and not driver.is_connected
