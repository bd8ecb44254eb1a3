"""Start TensorFlow without its start-up chatter on the user's terminal.

Importing TensorFlow and probing for a GPU print a dozen lines from C++ (absl's pre-init
warning, oneDNN and CPU-feature notes, `cuInit` failing on a machine without a GPU) that say
nothing to a user of `iomt train` or `iomt convert`. Done once, under `quiet_native_stderr`
with these lines as the noise (any other line still gets through), by each command that needs
TensorFlow right after its checks at the door: a refused command imports nothing heavy and
leaves no file behind (tf_keras writes `~/.keras/keras.json` when imported).
"""

from __future__ import annotations

import re

from edge_runtime.native_output import quiet_native_stderr

START_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IW]\d{4} .*|E\d{4} .*cuInit.*|To enable the following instructions.*"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.)$"
)


def start_tensorflow_quietly() -> None:
    """Import TensorFlow and let it look for devices, its start-up lines filtered out."""
    with quiet_native_stderr(START_NOISE):
        try:
            import tensorflow as tf
        except ImportError:  # an edge install: the command will say what it misses
            return
        tf.config.list_physical_devices("GPU")
