"""Edge rule: the emulated sensors and the PPG pipeline import neither TensorFlow, `training`
nor scipy (no scipy in the `edge` extra, no 32-bit ARM wheel)."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import sys
for name in ("tensorflow", "tf_keras", "tensorflow_model_optimization", "training", "scipy"):
    sys.modules[name] = None  # any import of these now fails
import hardware.sensors.imu, hardware.sensors.cardiac, hardware.sensors.ppg
import hardware.sensors.ppg_beats, hardware.sensors.ppg_filter, hardware.sensors.ppg_quality
import numpy as np
from hardware.sensors.ppg import heart_rate_from_ppg
t = np.arange(6400) / 64.0
assert np.isfinite(heart_rate_from_ppg(np.sin(2 * np.pi * 1.2 * t) ** 8, 64.0)).any()
print("ok")
"""


def test_sensors_import_and_run_without_tensorflow_training_or_scipy():
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
