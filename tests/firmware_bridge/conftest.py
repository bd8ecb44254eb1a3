"""Fixtures of the bridge tests: a tiny int8 model (TensorFlow, session scoped), a replay
dataset, and an emulated MCU served over an in-memory link or a real pty."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bridge_fakes import FakeRuntime, build_tiny_int8_model, write_window_dataset

from firmware_bridge.emulated_mcu import EmulatedMcu
from firmware_bridge.emulator_model import EmulatorModel
from firmware_bridge.emulator_service import EmulatorService
from firmware_bridge.firmware_build import FirmwareImage
from firmware_bridge.host_driver import HostDriver
from firmware_bridge.protocol.reliability import RetryPolicy
from firmware_bridge.sensor_source import ReplaySource, load_window_dataset
from firmware_bridge.transport import memory_link
from hardware.board_profiles import get_board


@pytest.fixture(scope="session")
def tiny_model() -> bytes:
    """Bytes of the tiny int8 model (built once per session with tf_keras)."""
    return build_tiny_int8_model()


@pytest.fixture(scope="session")
def tiny_lstm_model() -> bytes:
    """Bytes of a tiny int8 LSTM classifier (stateful kernels: reset matters)."""
    return build_tiny_int8_model(recurrent=True)


@pytest.fixture
def replay_path(tmp_path: Path) -> Path:
    """Path of a small window dataset."""
    return write_window_dataset(tmp_path / "windows.npz")


@pytest.fixture
def mcu(replay_path: Path) -> EmulatedMcu:
    """An emulated nano33ble with the fake model and the replay dataset."""
    sensors = ReplaySource(load_window_dataset(replay_path))
    model = EmulatorModel(model_bytes=b"fake-model")
    return EmulatedMcu(get_board("nano33ble"), model, sensors, model_loader=FakeRuntime)


@pytest.fixture
def memory_driver(mcu: EmulatedMcu) -> Iterator[HostDriver]:
    """A host driver connected to the emulated MCU over an in-memory link."""
    host_end, device_end = memory_link()
    service = EmulatorService(mcu, device_end).start()
    driver = HostDriver(host_end, RetryPolicy(timeout_s=0.2, max_attempts=10))
    driver.connect()
    yield driver
    driver.close()
    service.close()


@pytest.fixture(scope="session")
def firmware_image(tmp_path_factory: pytest.TempPathFactory) -> FirmwareImage:
    """The QEMU firmware with the fixture backbone, built once per session."""
    from qemu_support import build_test_image, require_toolchain

    require_toolchain()
    return build_test_image(tmp_path_factory.mktemp("firmware"))
