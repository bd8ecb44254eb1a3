"""Edge rule: firmware_bridge and hardware import no TensorFlow, training or (at import time)
tflite-micro. Checked in a fresh interpreter where those imports fail."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib, pkgutil, sys
BLOCKED = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "training", "tflite_micro")

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"edge package imported {name}")
        return None

sys.meta_path.insert(0, Blocker())
import firmware_bridge
names = [m.name for m in pkgutil.walk_packages(firmware_bridge.__path__, "firmware_bridge.")]
names += ["hardware.board_profiles", "hardware.errors", "iomt.commands.bridge"]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_edge_modules_import_without_tensorflow() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 15
