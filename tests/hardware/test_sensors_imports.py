"""Edge rule: the emulated sensors import neither TensorFlow nor `training`."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import sys
for name in ("tensorflow", "tf_keras", "tensorflow_model_optimization", "training"):
    sys.modules[name] = None  # any import of these now fails
import hardware.sensors.imu, hardware.sensors.cardiac, hardware.sensors.ppg
print("ok")
"""


def test_sensors_import_without_tensorflow_or_training():
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
