"""One place that imports TensorFlow, forcing Keras 2 (`tf_keras`).

The fused int8 `UNIDIRECTIONAL_SEQUENCE_LSTM` and tfmot pruning both need Keras 2; a Keras 3
LSTM converts to a `WHILE` loop that hangs TFLM. Users must not have to set
`TF_USE_LEGACY_KERAS` themselves, so the package sets it before the first TensorFlow import.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType


def import_keras() -> tuple[ModuleType, ModuleType]:
    """Return `(tensorflow, tf_keras)` with legacy Keras selected and TF logging quiet."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _native_stderr_silenced():
        import tensorflow as tf
        import tf_keras

    tf.get_logger().setLevel("ERROR")
    return tf, tf_keras


def import_tfmot() -> ModuleType:
    """Return `tensorflow_model_optimization`, imported after Keras 2 is selected."""
    import_keras()
    import tensorflow_model_optimization as tfmot

    return tfmot


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide the C++ start-up chatter (absl logs before its init ignore TF_CPP_MIN_LOG_LEVEL).

    Python exceptions still propagate; only what native code writes to fd 2 is dropped.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
