"""Expected failures of a conversion, each printed by `iomt` as one line."""

from __future__ import annotations


class ConvertError(Exception):
    """Root of every expected conversion failure."""


class FloatOpError(ConvertError):
    """The converted model still holds a float tensor in a compute op (not full-integer)."""


class TflmError(ConvertError):
    """tflite-micro could not load or run the model."""


class ParityError(ConvertError):
    """A converted variant disagrees with the float model more than allowed."""
