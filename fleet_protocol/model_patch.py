"""The global head as a patch against the version before it: bit-exact, checked by hash.

A new head differs from its parent only where the round moved it, and mostly in the low bits
of each float32. The patch is the XOR of the two heads' float32 bit patterns (little-endian,
tensors in order), zstd-compressed: unchanged elements are zero bytes, small changes share
their sign and exponent, and applying it gives the new head bit for bit, so its
`message_sha256` matches the one the aggregator signed. A patch is published only when it is
smaller than the full head; a device that lacks the base, or whose result does not hash to
the promised head, fetches the full one (`model/{version}`), which stays published.
"""

from __future__ import annotations

import math

import numpy as np

from fleet_protocol.envelope_compression import decompress_body, zstd_frame
from fleet_protocol.errors import MalformedMessageError, ShapeMismatchError
from fleet_protocol.types import Weights

_BITS = np.dtype("<u4")


def make_patch(base: Weights, new: Weights) -> bytes | None:
    """The zstd XOR patch from `base` to `new`, or None if their shapes differ."""
    if [np.shape(b) for b in base] != [np.shape(n) for n in new]:
        return None
    xor = b"".join((_bits(b) ^ _bits(n)).tobytes() for b, n in zip(base, new, strict=True))
    return zstd_frame(xor)


def apply_patch(base: Weights, patch: bytes) -> Weights:
    """`base` with the patch applied; refuses a patch that does not fit the base's shapes."""
    size = 4 * sum(math.prod(np.shape(b)) for b in base)
    xor = decompress_body(patch, size)
    if len(xor) != size:
        raise ShapeMismatchError(f"model patch holds {len(xor)} bytes, the base needs {size}")
    flat = np.frombuffer(xor, dtype=_BITS)
    out: Weights = []
    offset = 0
    for tensor in base:
        count = math.prod(np.shape(tensor))
        bits = _bits(tensor) ^ flat[offset : offset + count]
        out.append(bits.view("<f4").astype(np.float32).reshape(np.shape(tensor)))
        offset += count
    if not all(np.all(np.isfinite(t)) for t in out):
        raise MalformedMessageError("the patched head holds NaN or infinity")
    return out


def _bits(tensor: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(tensor, dtype="<f4").reshape(-1).view(_BITS)
