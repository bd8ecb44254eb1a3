"""`iomt edge --serial`: sensor frames from an emulated MCU on a real pty become windows."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest

from bundle_format.reader import Bundle
from edge_runtime.device_loop import SerialSource
from firmware_bridge.emulated_mcu import EmulatedMcu
from firmware_bridge.emulator_service import EmulatorService
from firmware_bridge.sensor_source import ReplaySource, WindowDataset
from firmware_bridge.transport import PtyEndpoint
from hardware.board_profiles import get_board

pytestmark = pytest.mark.integration

LENGTH, STRIDE, CHANNELS, RATE_HZ = 16, 8, 3, 400.0


def _bundle_view() -> Bundle:
    """Only the manifest fields a serial source reads (no files are opened)."""
    manifest = {"window_length": LENGTH, "stride": STRIDE, "sample_rate_hz": RATE_HZ,
                "channels": ["acc_x", "acc_y", "acc_z"],
                "normalisation": {"mean": [1.0] * CHANNELS, "std": [2.0] * CHANNELS}}  # fmt: skip
    return Bundle(Path("unused"), manifest, b"")


@pytest.mark.parametrize("wrist, acc_x_sign", [("left", 1.0), ("right", -1.0)])
def test_serial_frames_become_normalised_windows_and_button_labels(
    wrist: str, acc_x_sign: float
) -> None:
    # Prepare: an emulated board replaying windows whose samples equal their label + 1
    X = np.repeat(np.arange(1, 5, dtype=np.float32)[:, None, None], LENGTH, axis=1)
    X = np.repeat(X, CHANNELS, axis=2)  # (4, 16, 3)
    dataset = WindowDataset(X, np.arange(4), ("a", "b", "c", "d"), ("x", "y", "z"), RATE_HZ)
    endpoint = PtyEndpoint()
    service = EmulatorService(EmulatedMcu(get_board("nano33ble"), None, ReplaySource(dataset)),
                              endpoint).start()  # fmt: skip
    source = SerialSource(endpoint.path, _bundle_view(), time.time, wrist)

    # Execute: poll until a few windows and labels arrived
    windows, labels = [], []
    deadline = time.monotonic() + 20
    while len(windows) < 6 or len(labels) < 3:
        assert time.monotonic() < deadline, f"only {len(windows)} windows, {len(labels)} labels"
        batch = source.poll(time.time(), wait_s=1.0)
        windows += batch.windows
        labels += batch.label_events
    source.close()
    service.close()

    # Assert
    assert all(w.values.shape == (LENGTH, CHANNELS) for w in windows)
    first = windows[0].values
    in_model_frame = X[0] * np.array([acc_x_sign, 1.0, 1.0], dtype=np.float32)
    np.testing.assert_allclose(first, (in_model_frame - 1.0) / 2.0)  # aligned, normalised
    assert [label for _, label in labels[:3]] == [0, 1, 2]
    assert all(b.start_ts >= a.start_ts for a, b in itertools.pairwise(windows))
    assert windows[1].start_ts - windows[0].start_ts == pytest.approx(STRIDE / RATE_HZ, abs=1e-3)
