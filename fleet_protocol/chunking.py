"""Split an encoded message into MQTT-sized chunks and reassemble them, in bounded memory.

Managed brokers cap a publish at about 128 KB, so any payload may travel as chunks:

    chunk = MAGIC "IOCK" | u8 version | u8 id_len | message_id | u32 index | u32 count
            | u32 total_len | u32 crc32(payload) | data             (integers big-endian)

A chunk starts with `I` (0x49), which no msgpack envelope (a map) starts with, so a receiver
can tell chunks from bare envelopes with `is_chunk`. The assembler is pure: time comes from an
injected clock, and nothing grows without bound (pending bytes, pending messages, memory of
completed ids).
"""

from __future__ import annotations

import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from fleet_protocol.errors import ChunkError, MessageTooLargeError

MAGIC = b"IOCK"
CHUNK_VERSION = 1
DEFAULT_MAX_CHUNK_BYTES = 128 * 1024
MAX_MESSAGE_ID_BYTES = 128
_TAIL = struct.Struct(">IIII")  # index, count, total_len, crc32


def _header_bytes(message_id: bytes) -> int:
    return len(MAGIC) + 2 + len(message_id) + _TAIL.size


def is_chunk(data: bytes) -> bool:
    """True if `data` looks like a chunk rather than a bare envelope."""
    return data[: len(MAGIC)] == MAGIC


def split_into_chunks(
    payload: bytes, message_id: str, max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES
) -> list[bytes]:
    """Cut `payload` into chunks of at most `max_chunk_bytes` each, header included."""
    raw_id = message_id.encode()
    if not 0 < len(raw_id) <= MAX_MESSAGE_ID_BYTES:
        raise ChunkError(f"message id must be 1-{MAX_MESSAGE_ID_BYTES} bytes of UTF-8")
    room = max_chunk_bytes - _header_bytes(raw_id)
    if room <= 0:
        raise ChunkError(f"max_chunk_bytes {max_chunk_bytes} leaves no room for data")
    pieces = [payload[start : start + room] for start in range(0, len(payload), room)] or [b""]
    crc = zlib.crc32(payload)
    prefix = MAGIC + bytes([CHUNK_VERSION, len(raw_id)]) + raw_id
    return [
        prefix + _TAIL.pack(index, len(pieces), len(payload), crc) + piece
        for index, piece in enumerate(pieces)
    ]


@dataclass(frozen=True)
class Chunk:
    """One parsed chunk."""

    message_id: str
    index: int
    count: int
    total_len: int
    crc: int
    data: bytes


def parse_chunk(data: bytes) -> Chunk:
    """Parse and sanity-check one chunk; raise `ChunkError` if it is not one."""
    if not is_chunk(data) or len(data) < len(MAGIC) + 2:
        raise ChunkError("not a chunk (bad magic)")
    version, id_len = data[4], data[5]
    if version != CHUNK_VERSION:
        raise ChunkError(f"chunk format version {version}, expected {CHUNK_VERSION}")
    if id_len == 0 or id_len > MAX_MESSAGE_ID_BYTES or len(data) < 6 + id_len + _TAIL.size:
        raise ChunkError("truncated chunk header")
    try:
        message_id = data[6 : 6 + id_len].decode()
    except UnicodeDecodeError:
        raise ChunkError("chunk message id is not UTF-8") from None
    index, count, total_len, crc = _TAIL.unpack_from(data, 6 + id_len)
    body = data[6 + id_len + _TAIL.size :]
    if count == 0 or index >= count or count > max(total_len, 1) or len(body) > total_len:
        raise ChunkError(f"inconsistent chunk {index}/{count} of a {total_len}-byte message")
    return Chunk(message_id, index, count, total_len, crc, body)


@dataclass
class _Pending:
    chunk: Chunk
    started: float
    pieces: dict[int, bytes] = field(default_factory=dict)
    received_bytes: int = 0


@dataclass
class AssemblerStats:
    """What the assembler dropped, by reason (a service reports these)."""

    duplicates: int = 0
    expired: int = 0
    evicted: int = 0
    corrupt: int = 0
    completed: int = 0


Key = tuple[str, str]


class ChunkAssembler:
    """Reassemble chunked messages; `feed` returns the payload once its last chunk arrives.

    Bounded, and O(1) per chunk whatever a sender does: a message may not exceed
    `max_message_bytes`; one source may hold at most `max_partials_per_source` partial
    messages and `max_message_bytes` of data (its own oldest partial is evicted, nobody
    else's); all partials together hold at most `max_partials` messages and `max_pending_bytes`
    (the oldest is evicted); partials older than `timeout_s` on `clock` are dropped. Partials
    sit in arrival order, so expiry and eviction only ever look at the oldest. Recently
    completed ids are remembered so late duplicates are ignored. Chunks are keyed by
    `(source, message_id)`; pass the sender as `source` so one sender cannot inject chunks
    into another's message.
    """

    def __init__(
        self,
        *,
        max_message_bytes: int = 8 * 1024 * 1024,
        max_pending_bytes: int = 32 * 1024 * 1024,
        timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        remember_completed: int = 4096,
        max_partials: int = 1024,
        max_partials_per_source: int = 4,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_pending_bytes = max_pending_bytes
        self.timeout_s = timeout_s
        self.clock = clock
        self.max_partials, self.max_partials_per_source = max_partials, max_partials_per_source
        self.stats = AssemblerStats()
        self._pending: OrderedDict[Key, _Pending] = OrderedDict()
        self._by_source: dict[str, OrderedDict[Key, None]] = {}
        self._source_bytes: dict[str, int] = {}
        self._pending_bytes = 0
        self._completed: OrderedDict[Key, None] = OrderedDict()
        self._remember_completed = remember_completed

    @property
    def pending_bytes(self) -> int:
        """Bytes held by partial messages (kept as a running total, not summed)."""
        return self._pending_bytes

    @property
    def pending_messages(self) -> int:
        """Number of partial messages held."""
        return len(self._pending)

    def feed(self, data: bytes, *, source: str = "") -> bytes | None:
        """Take one chunk; return the whole payload when complete, else None."""
        chunk = parse_chunk(data)
        if chunk.total_len > self.max_message_bytes:
            raise MessageTooLargeError(
                f"chunked message of {chunk.total_len} bytes exceeds {self.max_message_bytes}"
            )
        self.expire()
        key = (source, chunk.message_id)
        if key in self._completed:
            self.stats.duplicates += 1
            return None
        pending = self._pending.get(key)
        if pending is None:
            pending = self._open(key, chunk)
        return self._add_piece(key, pending, chunk)

    def _open(self, key: Key, chunk: Chunk) -> _Pending:
        source = key[0]
        mine = self._by_source.setdefault(source, OrderedDict())
        while len(mine) >= self.max_partials_per_source:
            self._drop(next(iter(mine)), "evicted")
        while len(self._pending) >= self.max_partials:
            self._drop(next(iter(self._pending)), "evicted")
        pending = self._pending[key] = _Pending(chunk, self.clock())
        self._by_source.setdefault(source, OrderedDict())[key] = None
        return pending

    def _add_piece(self, key: Key, pending: _Pending, chunk: Chunk) -> bytes | None:
        first = pending.chunk
        if (chunk.count, chunk.total_len, chunk.crc) != (first.count, first.total_len, first.crc):
            raise ChunkError(f"chunk {chunk.index} of {chunk.message_id!r} disagrees with chunk 0")
        if chunk.index in pending.pieces:
            self.stats.duplicates += 1
            return None
        if pending.received_bytes + len(chunk.data) > first.total_len:
            self._drop(key, "corrupt")
            raise ChunkError(f"chunks of {chunk.message_id!r} exceed the declared length")
        pending.pieces[chunk.index] = chunk.data
        self._count_bytes(key[0], pending, len(chunk.data))
        if len(pending.pieces) == first.count:
            return self._complete(key, pending)
        self._enforce_budget(key[0])
        return None

    def _count_bytes(self, source: str, pending: _Pending, size: int) -> None:
        pending.received_bytes += size
        self._pending_bytes += size
        self._source_bytes[source] = self._source_bytes.get(source, 0) + size

    def _complete(self, key: Key, pending: _Pending) -> bytes:
        self._forget(key)
        payload = b"".join(pending.pieces[i] for i in range(pending.chunk.count))
        if len(payload) != pending.chunk.total_len or zlib.crc32(payload) != pending.chunk.crc:
            self.stats.corrupt += 1
            raise ChunkError(f"reassembled {key[1]!r} fails its length or CRC check")
        self._completed[key] = None
        while len(self._completed) > self._remember_completed:
            self._completed.popitem(last=False)
        self.stats.completed += 1
        return payload

    def _forget(self, key: Key) -> None:
        """Remove a partial from every index and from the byte totals."""
        pending = self._pending.pop(key)
        source = key[0]
        self._pending_bytes -= pending.received_bytes
        left = self._source_bytes.get(source, 0) - pending.received_bytes
        mine = self._by_source.get(source)
        if mine is not None:
            mine.pop(key, None)
        if mine:
            self._source_bytes[source] = left
        else:
            self._by_source.pop(source, None)
            self._source_bytes.pop(source, None)

    def _drop(self, key: Key, reason: str) -> None:
        self._forget(key)
        setattr(self.stats, reason, getattr(self.stats, reason) + 1)

    def _enforce_budget(self, source: str) -> None:
        mine = self._by_source.get(source)
        while mine and self._source_bytes.get(source, 0) > self.max_message_bytes:
            self._drop(next(iter(mine)), "evicted")
        while self._pending and self._pending_bytes > self.max_pending_bytes:
            self._drop(next(iter(self._pending)), "evicted")

    def expire(self) -> int:
        """Drop partial messages older than the timeout; return how many were dropped.

        Partials are kept in arrival order, so only the oldest ones are ever looked at.
        """
        now, dropped = self.clock(), 0
        while self._pending:
            key, oldest = next(iter(self._pending.items()))
            if now - oldest.started <= self.timeout_s:
                break
            self._drop(key, "expired")
            dropped += 1
        return dropped
