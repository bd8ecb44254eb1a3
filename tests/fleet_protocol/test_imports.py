"""The protocol and strategies run on an edge box: no TensorFlow, no training package."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "fleet_protocol.types",
    "fleet_protocol.errors",
    "fleet_protocol.topics",
    "fleet_protocol.messages",
    "aggregator.aggregation",
    "fleet_protocol.wire",
    "fleet_protocol.chunking",
    "fleet_protocol.tensor_codecs",
    "fleet_protocol.signing",
    "aggregator.strategies",
]

SCRIPT = """
import sys
for banned in ("tensorflow", "tf_keras", "tensorflow_model_optimization", "training"):
    sys.modules[banned] = None  # any import of them now raises ImportError
import importlib
for name in {modules!r}:
    importlib.import_module(name)
leaked = [m for m in ("tensorflow", "training") if sys.modules.get(m) is not None]
assert not leaked, leaked
"""


def test_federation_core_imports_without_tensorflow() -> None:
    # Execute
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(modules=MODULES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Assert
    assert result.returncode == 0, result.stderr
