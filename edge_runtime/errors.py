"""Exceptions of the edge runtime: one root, one subclass per thing that can go wrong.

Every message is one line so `iomt` can print it as is.
"""

from __future__ import annotations


class EdgeRuntimeError(Exception):
    """Root of every expected failure on the device."""


class ModelLoadError(EdgeRuntimeError):
    """A .tflite model could not be read or allocated."""


class InferenceError(EdgeRuntimeError):
    """A window did not fit the model, or the interpreter failed."""


class WindowError(EdgeRuntimeError):
    """Samples do not match the stream's channel count or normalisation."""


class HeadError(EdgeRuntimeError):
    """A head file or head weights are malformed."""


class FineTuneError(EdgeRuntimeError):
    """Fine-tuning was asked for something it cannot do (bad config, no examples)."""


class StoreError(EdgeRuntimeError):
    """The local sample store refused an operation."""


class InstallError(EdgeRuntimeError):
    """A head version could not be installed or rolled back."""


class LinkError(EdgeRuntimeError):
    """The MQTT link failed (raised by `edge_runtime.mqtt_link`)."""
