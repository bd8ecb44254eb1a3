"""Tensor codecs (float32, float16, int8 with per-tensor scale) and top-k sparsification.

Pure numpy. `encode_tensor` picks a sparse layout (indices + values) by itself when it is
smaller than the dense one, so a top-k sparsified delta travels compactly with any codec. The
indices are flat uint16/uint32 (`raw`, what every release reads) or, with `compact_indices`,
delta varints or a bitmap (`fleet_protocol.sparse_indices`, whichever is smaller), named by the
tensor's `index_coding`. Randomness (stochastic rounding) comes only from the `rng` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fleet_protocol.errors import (
    CodecError,
    MalformedMessageError,
    NonFiniteValueError,
    SparseIndexError,
)
from fleet_protocol.portable_rng import PortableRng
from fleet_protocol.sparse_indices import coded_count, decode_indices, encode_indices
from fleet_protocol.types import ArrayState, Weights

CODEC_DTYPES: dict[str, np.dtype[np.generic]] = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "int8": np.dtype("i1"),
}
"""Each codec's on-wire element type (little-endian)."""

Rounding = np.random.Generator | PortableRng
"""Where stochastic rounding draws its uniforms; a device passes `PortableRng(seed)` so the
firmware's codec (`firmware/core/iomt_int8_codec.c`) rounds the same elements up."""

RAW_INDICES = "raw"
_SMALL_INDEX = np.dtype("<u2")
_LARGE_INDEX = np.dtype("<u4")


def index_dtype(num_elements: int) -> np.dtype[np.unsignedinteger]:
    """Sparse indices are uint16 for tensors of up to 65,536 elements, else uint32."""
    return _SMALL_INDEX if num_elements <= 2**16 else _LARGE_INDEX


INT8_LEVELS = 127
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_MAX_INT8_SCALE = float(np.finfo(np.float32).max) / 128  # any int8 value times it stays finite


@dataclass(frozen=True)
class EncodedTensor:
    """One tensor as it travels: codec, logical shape, int8 scale, values, optional indices."""

    codec: str
    shape: tuple[int, ...]
    scale: float
    values: bytes
    indices: bytes | None = None
    index_coding: str = RAW_INDICES

    @property
    def num_elements(self) -> int:
        """Number of elements of the decoded (dense) tensor."""
        return math.prod(self.shape)


def stochastic_round(x: NDArray[np.floating], rng: Rounding) -> NDArray[np.float64]:
    """Round up with probability equal to the fractional part: unbiased, E[result] = x."""
    x64 = np.asarray(x, dtype=np.float64)
    floor = np.floor(x64)
    return floor + (rng.random(x64.shape) < (x64 - floor))


def quantize_int8(
    x: NDArray[np.floating], rng: Rounding | None = None
) -> tuple[NDArray[np.int8], float]:
    """Quantise to int8 with a per-tensor scale max|x|/127; stochastic if `rng` is given."""
    x64 = np.asarray(x, dtype=np.float64)
    peak = float(np.max(np.abs(x64))) if x64.size else 0.0
    scale = peak / INT8_LEVELS
    if scale == 0.0:
        return np.zeros(x64.shape, dtype=np.int8), 0.0
    scaled = x64 / scale
    rounded = np.rint(scaled) if rng is None else stochastic_round(scaled, rng)
    return np.clip(rounded, -INT8_LEVELS, INT8_LEVELS).astype(np.int8), scale


def encode_tensor(
    array: NDArray[np.floating],
    codec: str,
    rng: Rounding | None = None,
    *,
    compact_indices: bool = False,
) -> EncodedTensor:
    """Encode one float tensor; raise `CodecError` for unknown codecs or unrepresentable values.

    `compact_indices` codes sparse positions as varints or a bitmap: only for a receiver that
    announced it reads them (an older one reads `raw` indices only).
    """
    if codec not in CODEC_DTYPES:
        raise CodecError(f"unknown codec {codec!r}; expected one of {', '.join(CODEC_DTYPES)}")
    dense = np.asarray(array, dtype=np.float32)
    if not np.all(np.isfinite(dense)):
        raise CodecError("cannot encode a tensor holding NaN or infinity")
    if codec == "float16" and dense.size and float(np.max(np.abs(dense))) > _FLOAT16_MAX:
        raise CodecError("tensor exceeds the float16 range; use float32 or int8")
    flat = dense.reshape(-1)
    nonzero = np.flatnonzero(flat)
    itemsize = CODEC_DTYPES[codec].itemsize
    coding, indices = _coded_indices(nonzero, flat.size, compact_indices)
    sparse = nonzero.size * itemsize + len(indices) < flat.size * itemsize
    shape = tuple(int(d) for d in dense.shape)
    if not sparse:
        dense_values, dense_scale = _encode_values(flat, codec, rng)
        return EncodedTensor(codec, shape, dense_scale, dense_values)
    values, scale = _encode_values(flat[nonzero], codec, rng)
    return EncodedTensor(codec, shape, scale, values, indices, coding)


def _coded_indices(nonzero: NDArray[np.intp], size: int, compact: bool) -> tuple[str, bytes]:
    if compact:
        return encode_indices(nonzero, size)
    return RAW_INDICES, nonzero.astype(index_dtype(size)).tobytes()


def _encode_values(
    flat: NDArray[np.float32], codec: str, rng: Rounding | None
) -> tuple[bytes, float]:
    if codec == "int8":
        quantised, scale = quantize_int8(flat, rng)
        return quantised.tobytes(), scale
    return flat.astype(CODEC_DTYPES[codec]).tobytes(), 1.0


def decode_tensor(encoded: EncodedTensor) -> NDArray[np.float32]:
    """Decode one tensor, checking sizes before allocating and finiteness after."""
    if encoded.indices is None:
        return decode_dense(encoded.codec, encoded.shape, encoded.scale, encoded.values)
    dtype = _codec_dtype(encoded.codec)
    size = encoded.num_elements
    count = _value_count(encoded, size)
    values = _values(encoded.codec, dtype, encoded.shape, encoded.scale, encoded.values, count)
    dense = np.zeros(size, dtype=np.float32)
    dense[_checked_indices(encoded, size, count)] = values
    return dense.reshape(encoded.shape)


def decode_dense(
    codec: str, shape: tuple[int, ...], scale: float, values: bytes
) -> NDArray[np.float32]:
    """A dense tensor (no indices): `decode_tensor`'s checks and result, without building an
    `EncodedTensor` (the decoder's common case, once per tensor of every update)."""
    dtype = _codec_dtype(codec)
    return _values(codec, dtype, shape, scale, values, math.prod(shape)).reshape(shape)


def _codec_dtype(codec: str) -> np.dtype[np.generic]:
    dtype = CODEC_DTYPES.get(codec)
    if dtype is None:
        raise MalformedMessageError(f"unknown tensor codec {codec!r}")
    return dtype


def _values(codec: str, dtype: np.dtype[np.generic], shape: tuple[int, ...], scale: float,
            data: bytes, count: int) -> NDArray[np.float32]:  # fmt: skip
    """`count` coded values as float32: size checked before, finiteness after."""
    if len(data) != count * dtype.itemsize:
        raise MalformedMessageError(
            f"tensor {shape} declares {count} {codec} values but carries {len(data)} bytes"
        )
    if not 0 <= scale <= _MAX_INT8_SCALE:  # also false for NaN
        raise NonFiniteValueError(f"invalid tensor scale {scale!r}")
    raw = np.frombuffer(data, dtype=dtype)
    if codec == "int8":  # one multiply straight to float32; finite by construction
        # |value| <= 127 * the checked scale; dtype fixed (NumPy 1 would pick float16)
        return np.multiply(raw, np.float32(scale), dtype=np.float32)
    values = raw.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise NonFiniteValueError(f"tensor {shape} holds NaN or infinity")
    return values


def _value_count(encoded: EncodedTensor, size: int) -> int:
    if encoded.indices is None:
        return size
    if encoded.index_coding != RAW_INDICES:
        count = coded_count(encoded.index_coding, encoded.indices)
        if count > size:
            raise SparseIndexError(f"sparse tensor has {count} indices for {size} elements")
        return count
    width = index_dtype(size).itemsize
    if len(encoded.indices) % width:
        raise MalformedMessageError(f"sparse tensor indices are not whole {8 * width}-bit values")
    count = len(encoded.indices) // width
    if count > size:
        raise MalformedMessageError(f"sparse tensor has {count} indices for {size} elements")
    return count


def _checked_indices(encoded: EncodedTensor, size: int, count: int) -> NDArray[np.integer]:
    assert encoded.indices is not None
    if encoded.index_coding != RAW_INDICES:
        return decode_indices(encoded.index_coding, encoded.indices, size, count)
    indices = np.frombuffer(encoded.indices, dtype=index_dtype(size))
    increasing = bool(np.all(np.diff(indices.astype(np.int64)) > 0))
    if indices.size and (int(indices[-1]) >= size or not increasing):
        raise MalformedMessageError("sparse indices must be strictly increasing and in range")
    return indices


class TopKSparsifier:
    """Keep the k largest-magnitude entries per tensor; carry the rest over (error feedback).

    Lives on the device: the residual of what was not sent is added to the next delta, so
    nothing is lost, only delayed (Stich et al., 2018). Persist it with `to_arrays`.
    """

    def __init__(self, fraction: float) -> None:
        if not 0.0 < fraction <= 1.0:
            raise CodecError(f"top-k fraction must be in (0, 1], got {fraction!r}")
        self.fraction = fraction
        self.residual: Weights | None = None

    def sparsify(self, delta: Weights) -> Weights:
        """Return the sparse delta to send (zeros elsewhere) and keep the residual."""
        corrected = [np.asarray(t, dtype=np.float32).copy() for t in delta]
        if self.residual is not None:
            if [r.shape for r in self.residual] != [c.shape for c in corrected]:
                raise CodecError("delta shapes changed since the residual was recorded")
            corrected = [c + r for c, r in zip(corrected, self.residual, strict=True)]
        sent = [self._keep_top_k(tensor) for tensor in corrected]
        self.residual = [c - s for c, s in zip(corrected, sent, strict=True)]
        return sent

    def _keep_top_k(self, tensor: NDArray[np.float32]) -> NDArray[np.float32]:
        flat = tensor.reshape(-1)
        k = max(1, math.ceil(self.fraction * flat.size)) if flat.size else 0
        kept = np.zeros_like(flat)
        if k:
            top = np.argpartition(np.abs(flat), flat.size - k)[flat.size - k :]
            kept[top] = flat[top]
        return kept.reshape(tensor.shape)

    def reset(self) -> None:
        """Forget the residual (e.g. after the device swapped in a new global model)."""
        self.residual = None

    def to_arrays(self) -> ArrayState:
        """The residual as named arrays (empty if none), for `np.savez`."""
        return {f"residual_{i}": r for i, r in enumerate(self.residual or [])}

    def from_arrays(self, arrays: ArrayState) -> None:
        """Restore the residual written by `to_arrays`."""
        count = len(arrays)
        tensors = [np.asarray(arrays[f"residual_{i}"], dtype=np.float32) for i in range(count)]
        self.residual = tensors or None
