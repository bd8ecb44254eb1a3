"""The firmware's model partition as bytes: what a programmer writes, what a power cut leaves.

The C core (`firmware/core/iomt_slots.c`, `iomt_model.c`) keeps two head slots and two model
slots; a record is a 64-byte header (magic, kind, sequence, size, SHA-256, CRC-16, commit word
written last) followed by its data. `partition_image` builds a partition holding a model and a
head, as flashing a board would; `committed_record` reads one back by the firmware's own rule
(the newest complete record whose data matches its hash). Pure functions on bytes.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol.framing import MAX_PAYLOAD, crc16_ccitt_false

PAGE_SIZE = 4096
RECORD_HEADER = 64
MAGIC = 0x524D4F49
COMMITTED = 0x600DC0DE
KIND_MODEL, KIND_HEAD = 1, 2
SPILL_PAGES = 8  # the embedding ring's spill region ends the partition (IOMT_RING_SPILL_PAGES)
_HEADER = struct.Struct("<IIII32s")


@dataclass(frozen=True)
class PartitionLayout:
    """Where the slots lie in a partition of `size` bytes (as `iomt_model.c` lays them out)."""

    size: int
    page_size: int = PAGE_SIZE

    @property
    def head_slot(self) -> int:
        """Bytes per head slot: one HEAD_SET payload and its header, whole pages."""
        return -(-(RECORD_HEADER + MAX_PAYLOAD) // self.page_size) * self.page_size

    @property
    def model_slot(self) -> int:
        """Bytes per model slot, header included."""
        spill = SPILL_PAGES * self.page_size
        room = self.size // self.page_size * self.page_size - 2 * self.head_slot
        room -= spill if room >= spill else 0
        return max(room, 0) // 2 // self.page_size * self.page_size

    @property
    def model_capacity(self) -> int:
        """Largest model the partition takes."""
        return self.model_slot - RECORD_HEADER

    def slot_offset(self, kind: int, slot: int) -> int:
        """Offset of a slot in the partition."""
        if kind == KIND_HEAD:
            return slot * self.head_slot
        return 2 * self.head_slot + slot * self.model_slot


def record_bytes(kind: int, seq: int, data: bytes) -> bytes:
    """A complete record: header (commit word included) and data."""
    fields = _HEADER.pack(MAGIC, kind, seq, len(data), hashlib.sha256(data).digest())
    header = fields + struct.pack("<H", crc16_ccitt_false(fields))
    header = header.ljust(60, b"\xff") + struct.pack("<I", COMMITTED)
    return header + data


def partition_image(layout: PartitionLayout, model: bytes, head_payload: bytes | None) -> bytes:
    """An erased partition with `model` (and the HEAD_SET payload `head_payload`) in slot 0."""
    if len(model) > layout.model_capacity:
        raise BridgeError(f"model of {len(model)} B exceeds flash budget {layout.model_capacity} B")
    image = bytearray(b"\xff" * layout.size)
    records = [(KIND_MODEL, model)] + ([(KIND_HEAD, head_payload)] if head_payload else [])
    for kind, data in records:
        at = layout.slot_offset(kind, 0)
        record = record_bytes(kind, 1, data)
        image[at : at + len(record)] = record
    return bytes(image)


def committed_record(layout: PartitionLayout, image: bytes, kind: int) -> bytes | None:
    """The data of the newest valid record of `kind` in a partition image, None when none."""
    best: tuple[int, bytes] | None = None
    for slot in (0, 1):
        at = layout.slot_offset(kind, slot)
        found = _valid_record(image[at : at + RECORD_HEADER], image, at, kind)
        if found is not None and (best is None or 0 < (found[0] - best[0]) % 2**32 < 2**31):
            best = found
    return best[1] if best else None


def _valid_record(header: bytes, image: bytes, at: int, kind: int) -> tuple[int, bytes] | None:
    if len(header) < RECORD_HEADER:
        return None
    magic, record_kind, seq, size, digest = _HEADER.unpack_from(header)
    (crc,) = struct.unpack_from("<H", header, 48)
    (commit,) = struct.unpack_from("<I", header, 60)
    if (magic, record_kind, commit) != (MAGIC, kind, COMMITTED):
        return None
    if crc != crc16_ccitt_false(header[:48]):
        return None
    data = image[at + RECORD_HEADER : at + RECORD_HEADER + size]
    return (seq, data) if hashlib.sha256(data).digest() == digest else None
