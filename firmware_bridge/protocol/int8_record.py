"""The firmware's int8-coded tensor (`firmware/core/iomt_int8_codec.h`), read on the host.

The firmware encodes a delta exactly as `fleet_protocol.tensor_codecs.encode_tensor(codec="int8")`
does (dense or sparse layout, per-tensor scale, stochastic rounding from the shared SplitMix64
stream), so the host relays it without re-quantising. This package may not import
`fleet_protocol`; `edge_runtime.mcu_training` turns a record into its `EncodedTensor`.

Record: `layout u8` (0 dense, 1 sparse with u16 indices, 2 sparse with u32 indices),
`scale f64`, `count u32`, then `count` indices (sparse only) and `count` int8 values.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_bridge.errors import PayloadError
from firmware_bridge.protocol.payload import PayloadReader

INDEX_BYTES = {0: 0, 1: 2, 2: 4}


@dataclass(frozen=True)
class Int8Record:
    """One tensor as the firmware coded it: scale, int8 values, little-endian indices or None."""

    scale: float
    values: bytes
    indices: bytes | None


def read_int8_record(reader: PayloadReader) -> Int8Record:
    """The next record in `reader`; a `PayloadError` names what is malformed."""
    layout = reader.u8()
    if layout not in INDEX_BYTES:
        raise PayloadError(f"int8 record: unknown layout {layout}")
    scale, count = reader.unpack("dI")
    width = INDEX_BYTES[layout]
    indices = reader.take(width * int(count)) if width else None  # type: ignore[call-overload]
    values = reader.take(int(count))  # type: ignore[call-overload]
    return Int8Record(float(scale), values, indices)  # type: ignore[arg-type]


def read_int8_records(data: bytes, count: int) -> list[Int8Record]:
    """`count` records back to back, nothing after them."""
    reader = PayloadReader(data, "int8 delta")
    records = [read_int8_record(reader) for _ in range(count)]
    reader.done()
    return records
