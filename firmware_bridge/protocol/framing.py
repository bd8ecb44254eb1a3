"""Frames on the wire: header + payload + CRC-16/CCITT-FALSE, COBS-encoded, 0x00-delimited.

Pure logic: no serial port, no thread, no clock. `encode_frame` turns a `Frame` into bytes
to write; `FrameDecoder.feed` turns whatever bytes arrived into the frames they complete.
Damaged input is counted on the decoder, never raised, so a reader thread cannot die on
line noise (pyserial's `FramedPacket.handle_out_of_packet_data`, made explicit).

Layout before COBS (all integers little-endian)::

    version u8 | type u8 | seq u8 | length u16 | payload[length] | crc16 u16

The CRC covers version..payload. COBS removes every 0x00, so 0x00 ends a frame.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass, field

from cobs import cobs

from firmware_bridge.errors import FrameError

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<BBBH")
CRC_SIZE = 2
DELIMITER = b"\x00"
MAX_PAYLOAD = 16384


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0).

    `binascii.crc_hqx` computes exactly this in C; the `crc` package (Crc16.IBM_3740) is the
    independent reference the tests compare it with, too slow per byte for the data path.
    """
    return binascii.crc_hqx(data, 0xFFFF)


def max_encoded_length(max_payload: int = MAX_PAYLOAD) -> int:
    """Longest COBS-encoded frame (without delimiter) for a payload bound."""
    raw = HEADER.size + max_payload + CRC_SIZE
    return raw + raw // 254 + 1


@dataclass(frozen=True)
class Frame:
    """One protocol frame: message type, sequence number and raw payload."""

    type: int
    seq: int
    payload: bytes = b""
    version: int = PROTOCOL_VERSION


def frame_to_raw(frame: Frame) -> bytes:
    """Header + payload + CRC, before COBS (what the CRC and the C code see)."""
    if not 0 <= frame.seq <= 0xFF or not 0 <= frame.type <= 0xFF:
        raise FrameError(f"type and seq must fit a byte: type={frame.type} seq={frame.seq}")
    if len(frame.payload) > 0xFFFF:
        raise FrameError(f"payload of {len(frame.payload)} B exceeds 65535 B")
    body = HEADER.pack(frame.version, frame.type, frame.seq, len(frame.payload)) + frame.payload
    return body + struct.pack("<H", crc16_ccitt_false(body))


def encode_frame(frame: Frame) -> bytes:
    """Wire bytes of a frame: COBS(header + payload + CRC) followed by 0x00."""
    return bytes(cobs.encode(frame_to_raw(frame))) + DELIMITER


def _raw_problem(raw: bytes, max_payload: int) -> tuple[str, str] | None:
    """(stats counter, message) describing what is wrong with un-COBSed bytes, or None."""
    if len(raw) < HEADER.size + CRC_SIZE:
        return "length_errors", f"frame of {len(raw)} B is shorter than header + CRC"
    version, _, _, length = HEADER.unpack_from(raw)
    if length > max_payload:
        return "length_errors", f"payload length {length} exceeds the bound {max_payload}"
    if len(raw) != HEADER.size + length + CRC_SIZE:
        return "length_errors", f"length field {length} does not match frame of {len(raw)} B"
    (received,) = struct.unpack_from("<H", raw, len(raw) - CRC_SIZE)
    if received != crc16_ccitt_false(raw[:-CRC_SIZE]):
        return "crc_errors", "CRC mismatch"
    if version != PROTOCOL_VERSION:
        return "version_errors", f"protocol version {version} is not {PROTOCOL_VERSION}"
    return None


def _raw_to_frame(raw: bytes) -> Frame:
    _, frame_type, seq, _ = HEADER.unpack_from(raw)
    return Frame(type=frame_type, seq=seq, payload=bytes(raw[HEADER.size : -CRC_SIZE]))


def frame_from_raw(raw: bytes, max_payload: int = MAX_PAYLOAD) -> Frame:
    """Parse un-COBSed bytes; raise `FrameError` saying what is wrong."""
    problem = _raw_problem(raw, max_payload)
    if problem is not None:
        raise FrameError(problem[1])
    return _raw_to_frame(raw)


def decode_frame(encoded: bytes, max_payload: int = MAX_PAYLOAD) -> Frame:
    """Parse one COBS-encoded frame (delimiter optional); raise `FrameError` on any damage."""
    if encoded.endswith(DELIMITER):
        encoded = encoded[:-1]
    try:
        raw = cobs.decode(encoded)
    except cobs.DecodeError as exc:
        raise FrameError(f"bad COBS encoding: {exc}") from None
    return frame_from_raw(raw, max_payload)


@dataclass
class DecoderStats:
    """What a decoder has seen: good frames and each kind of damage."""

    frames: int = 0
    cobs_errors: int = 0
    crc_errors: int = 0
    length_errors: int = 0
    version_errors: int = 0
    oversize: int = 0
    empty: int = 0

    @property
    def errors(self) -> int:
        """Total damaged frames of any kind."""
        return (
            self.cobs_errors
            + self.crc_errors
            + self.length_errors
            + self.version_errors
            + self.oversize
        )


@dataclass
class FrameDecoder:
    """Incremental decoder: feed any chunks of bytes, get the frames they complete."""

    max_payload: int = MAX_PAYLOAD
    stats: DecoderStats = field(default_factory=DecoderStats)
    _buffer: bytearray = field(default_factory=bytearray)
    _discarding: bool = False

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by `data`; damaged ones are counted in `stats`, never raised."""
        frames: list[Frame] = []
        limit = max_encoded_length(self.max_payload)
        for chunk in _split_keep_delimiter(bytes(data)):
            if not chunk.endswith(DELIMITER):
                self._append(chunk, limit)
                continue
            self._append(chunk[:-1], limit)
            frame = self._finish()
            if frame is not None:
                frames.append(frame)
        return frames

    def _append(self, data: bytes, limit: int) -> None:
        if self._discarding:
            return
        self._buffer += data
        if len(self._buffer) > limit:
            self.stats.oversize += 1
            self._buffer.clear()
            self._discarding = True

    def _finish(self) -> Frame | None:
        encoded, self._buffer = bytes(self._buffer), bytearray()
        if self._discarding:
            self._discarding = False
            return None
        if not encoded:
            self.stats.empty += 1
            return None
        return self._parse(encoded)

    def _parse(self, encoded: bytes) -> Frame | None:
        try:
            raw = cobs.decode(encoded)
        except cobs.DecodeError:
            self.stats.cobs_errors += 1
            return None
        problem = _raw_problem(raw, self.max_payload)
        if problem is not None:
            counter = problem[0]
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
            return None
        self.stats.frames += 1
        return _raw_to_frame(raw)


def _split_keep_delimiter(data: bytes) -> list[bytes]:
    parts = data.split(DELIMITER)
    chunks = [part + DELIMITER for part in parts[:-1]]
    if parts[-1]:
        chunks.append(parts[-1])
    return chunks
