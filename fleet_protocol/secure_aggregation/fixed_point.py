"""Floats to integers mod 2^32 and back, so masks can be added without any rounding error.

A value v travels as round(v * 2^frac_bits) mod 2^32. A sum of such integers decodes exactly
(two's complement) as long as the true sum stays within +-2^(31 - frac_bits); each device adds
at most half a step (2^-frac_bits / 2) of rounding error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.types import Weights

MODULUS = 2**32
Vector = NDArray[np.uint32]


@dataclass(frozen=True)
class FixedPoint:
    """The fixed-point format: `frac_bits` fractional bits in a 32-bit ring."""

    frac_bits: int = 16

    @property
    def step(self) -> float:
        """Resolution: the smallest representable difference."""
        return 2.0**-self.frac_bits

    @property
    def limit(self) -> float:
        """Largest magnitude a (summed) value may reach."""
        return 2.0 ** (31 - self.frac_bits)

    def encode(self, values: NDArray[np.floating]) -> Vector:
        """Float vector -> uint32 ring elements; raise if a value is out of range."""
        scaled = np.rint(np.asarray(values, np.float64) * 2.0**self.frac_bits)
        if not np.all(np.isfinite(scaled)) or np.any(np.abs(scaled) >= 2**31):
            raise SecureAggregationError(f"value outside +-{self.limit} cannot be encoded")
        return scaled.astype(np.int64).astype(np.uint32)

    def decode(self, ring: Vector) -> NDArray[np.float64]:
        """uint32 ring elements (e.g. an unmasked sum) -> floats."""
        signed = np.asarray(ring, np.uint32).view(np.int32).astype(np.float64)
        return signed / 2.0**self.frac_bits


def flatten(weights: Weights) -> NDArray[np.float64]:
    """All tensors as one float64 vector (row-major, in order)."""
    if not weights:
        return np.zeros(0, np.float64)
    return np.concatenate([np.asarray(w, np.float64).ravel() for w in weights])


def unflatten(vector: NDArray[np.floating], shapes: list[tuple[int, ...]]) -> Weights:
    """Split a vector back into float32 tensors of `shapes`."""
    sizes = [int(np.prod(shape)) for shape in shapes]
    if sum(sizes) != vector.size:
        raise SecureAggregationError(f"vector of {vector.size} values, shapes need {sum(sizes)}")
    pieces = np.split(np.asarray(vector), np.cumsum(sizes)[:-1])
    return [p.reshape(s).astype(np.float32) for p, s in zip(pieces, shapes, strict=True)]


def add_mod(a: Vector, b: Vector) -> Vector:
    """(a + b) mod 2^32 (uint32 arithmetic wraps)."""
    return (a.astype(np.uint32) + b.astype(np.uint32)).astype(np.uint32)


def sub_mod(a: Vector, b: Vector) -> Vector:
    """(a - b) mod 2^32."""
    return (a.astype(np.uint32) - b.astype(np.uint32)).astype(np.uint32)
