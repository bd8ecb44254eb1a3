"""The protocol and strategies run on an edge box: no TensorFlow, no training package."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "federation.types",
    "federation.errors",
    "federation.topics",
    "federation.messages",
    "federation.aggregation",
    "federation.protocol.wire",
    "federation.protocol.chunking",
    "federation.protocol.tensor_codecs",
    "federation.protocol.signing",
    "federation.strategies",
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
