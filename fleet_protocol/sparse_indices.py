"""Compact codings of the positions of a sparse tensor: delta varints or a bitmap.

A top-k delta at 1-10 % density spends as many bytes on where its values sit as on the values.
Two codings, the smaller one chosen per tensor and named on the wire (`index_coding`):

- `varint`: the first index, then each gap to the previous one, as LEB128 varints (a gap of
  1..127 is one byte). Fits sparse tensors.
- `bitmap`: one bit per element, little-endian bit order, ceil(size / 8) bytes. Fits denser ones.

Decoding never trusts the bytes: truncated or over-long varints, a gap of 0 (a duplicate), an
index past the tensor, bits set past its end and a count that is not the values' count are each
refused with one line (`SparseIndexError`). Pure numpy, vectorised: hostile input of megabytes
costs no Python loop.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from fleet_protocol.errors import SparseIndexError

VARINT = "varint"
BITMAP = "bitmap"
INDEX_CODINGS = (VARINT, BITMAP)
_MAX_VARINT_BYTES = 5  # enough for any index of a tensor below 2**32 elements

Indices = NDArray[np.int64]


def encode_indices(indices: NDArray[np.integer], size: int) -> tuple[str, bytes]:
    """The smaller of the two codings of strictly increasing `indices` into `size` elements."""
    positions = np.asarray(indices, dtype=np.int64)
    varints = _varints(np.diff(positions, prepend=0) if positions.size else positions)
    bitmap_bytes = (size + 7) // 8
    if len(varints) <= bitmap_bytes:
        return VARINT, varints
    bits = np.zeros(bitmap_bytes * 8, dtype=np.uint8)
    bits[positions] = 1
    return BITMAP, np.packbits(bits, bitorder="little").tobytes()


def decode_indices(coding: str, raw: bytes, size: int, count: int) -> Indices:
    """The `count` strictly increasing positions in [0, size) that `raw` codes, or refuse."""
    if coding == BITMAP:
        positions = _from_bitmap(raw, size)
    elif coding == VARINT:
        positions = np.cumsum(_from_varints(raw, count), dtype=np.int64)
    else:
        raise SparseIndexError(f"unknown index coding {coding!r}")
    if positions.size != count:
        raise SparseIndexError(f"sparse tensor codes {positions.size} indices for {count} values")
    _check_positions(positions, size, coding)
    return positions


def coded_count(coding: str, raw: bytes) -> int:
    """How many indices `raw` holds, read without decoding them (to size the values first)."""
    data = np.frombuffer(raw, dtype=np.uint8)
    if coding == BITMAP:
        return int(np.unpackbits(data).sum())
    if coding == VARINT:
        return int(np.count_nonzero(data < 0x80))
    raise SparseIndexError(f"unknown index coding {coding!r}")


def _varints(values: NDArray[np.int64]) -> bytes:
    """LEB128 of non-negative integers below 2**35, vectorised one byte-column at a time."""
    if not values.size:
        return b""
    lengths = _byte_lengths(values)
    out = np.zeros((values.size, _MAX_VARINT_BYTES), dtype=np.uint8)
    for column in range(_MAX_VARINT_BYTES):
        chunk = (values >> (7 * column)) & 0x7F
        more = column < lengths - 1
        out[:, column] = chunk | (more.astype(np.int64) << 7)
    keep = np.arange(_MAX_VARINT_BYTES) < lengths[:, None]
    return out[keep].tobytes()


def _byte_lengths(values: NDArray[np.int64]) -> NDArray[np.int64]:
    lengths = np.ones(values.shape, dtype=np.int64)
    for column in range(1, _MAX_VARINT_BYTES):
        lengths += values >= (1 << (7 * column))
    return lengths


def _from_varints(raw: bytes, count: int) -> Indices:
    data = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    if not data.size:
        return np.zeros(0, dtype=np.int64)
    if data[-1] & 0x80:
        raise SparseIndexError("sparse indices end inside a varint")
    ends = np.flatnonzero(data < 0x80)
    if ends.size != count:
        raise SparseIndexError(f"sparse tensor codes {ends.size} indices for {count} values")
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if int(lengths.max()) > _MAX_VARINT_BYTES:
        raise SparseIndexError(f"a sparse index varint is longer than {_MAX_VARINT_BYTES} bytes")
    if np.any((lengths > 1) & (data[ends] == 0)):
        raise SparseIndexError("a sparse index varint is not in its shortest form")
    place = np.arange(data.size) - np.repeat(starts, lengths)
    return np.add.reduceat((data & 0x7F) << (7 * place), starts)


def _from_bitmap(raw: bytes, size: int) -> Indices:
    if len(raw) != (size + 7) // 8:
        raise SparseIndexError(f"a bitmap of {size} elements takes {(size + 7) // 8} bytes")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    if bits[size:].any():
        raise SparseIndexError("the sparse bitmap sets bits past the end of the tensor")
    return np.flatnonzero(bits).astype(np.int64)


def _check_positions(positions: Indices, size: int, coding: str) -> None:
    if not positions.size:
        return
    gaps = np.diff(positions)
    if coding == VARINT and gaps.size and int(gaps.min()) == 0:
        raise SparseIndexError(f"duplicate sparse index {int(positions[1:][gaps == 0][0])}")
    if gaps.size and int(gaps.min()) < 0:
        raise SparseIndexError("sparse indices are not increasing")
    if int(positions[-1]) >= size:
        raise SparseIndexError(
            f"sparse index {int(positions[-1])} out of range for {size} elements"
        )
