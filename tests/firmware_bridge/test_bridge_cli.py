"""`iomt bridge ...` in-process against an emulated MCU on a real pty, and `emulate` as a
separate process."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bridge_fakes import FakeRuntime

from firmware_bridge.emulated_mcu import EmulatedMcu
from firmware_bridge.emulator_model import EmulatorModel
from firmware_bridge.emulator_service import EmulatorService
from firmware_bridge.host_driver import HostDriver
from firmware_bridge.sensor_source import ReplaySource, load_window_dataset
from firmware_bridge.transport import PtyEndpoint
from hardware.board_profiles import get_board
from iomt.cli import main
from iomt.environment import Environment


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Environment(stdout=out, stderr=err, interactive=False))
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def pty_port(replay_path: Path) -> Iterator[str]:
    sensors = ReplaySource(load_window_dataset(replay_path))
    mcu = EmulatedMcu(get_board("esp32s3"), EmulatorModel(b"m"), sensors, FakeRuntime)
    endpoint = PtyEndpoint()
    with EmulatorService(mcu, endpoint):
        yield endpoint.path


def test_info_json(pty_port: str) -> None:
    status, out, _ = run_cli("bridge", "info", "--port", pty_port, "--json")
    assert status == 0
    assert json.loads(out)["board"] == "esp32s3"


def test_upload_json(pty_port: str, tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(bytes(range(256)) * 10)
    status, out, _ = run_cli("bridge", "upload", str(model), "--port", pty_port, "--json")
    assert status == 0 and json.loads(out)["bytes"] == 2560


def test_infer_and_stream_json(pty_port: str, replay_path: Path) -> None:
    status, out, _ = run_cli(
        "bridge", "infer", "--port", pty_port, "--data", str(replay_path), "--count", "3", "--json"
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and rows[-1]["windows"] == 3
    status, out, _ = run_cli("bridge", "stream", "--port", pty_port, "--seconds", "0.3", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and any("samples" in row for row in rows)


def test_missing_port_is_one_line_error() -> None:
    status, out, err = run_cli("bridge", "info", "--port", "/dev/no-such-tty")
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "cannot open serial port /dev/no-such-tty" in err


def test_unknown_board_is_one_line_error() -> None:
    status, _, err = run_cli("bridge", "emulate", "--board", "uno")
    assert status == 2 and "known boards: pi4" in err


@pytest.mark.integration
def test_emulate_process_prints_port_and_serves(replay_path: Path) -> None:
    command = [sys.executable, "-m", "iomt.cli", "bridge", "emulate", "--json"]
    command += ["--replay", str(replay_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = json.loads(process.stdout.readline())["port"]
        with HostDriver.open(port) as driver:
            info = driver.info()
        assert info.board == "nano33ble" and not info.has_model
        assert info.sample_rate_hz == 200.0
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
