"""Framing: known bytes, damage counted never raised, and a hypothesis fuzz of the decoder."""

from __future__ import annotations

import contextlib

import crc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.errors import FrameError
from firmware_bridge.protocol.framing import (
    MAX_PAYLOAD,
    Frame,
    FrameDecoder,
    crc16_ccitt_false,
    decode_frame,
    encode_frame,
    max_encoded_length,
)

frames = st.builds(
    Frame,
    type=st.integers(0, 255),
    seq=st.integers(0, 255),
    payload=st.binary(max_size=600),
)


def test_crc16_ccitt_false_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1


@given(st.binary(max_size=300))
def test_crc16_matches_crc_package(data: bytes) -> None:
    reference = crc.Calculator(crc.Crc16.IBM_3740)  # the catalogue name of CCITT-FALSE
    assert crc16_ccitt_false(data) == reference.checksum(data)


def test_encode_frame_known_bytes() -> None:
    # Prepare
    frame = Frame(type=0x01, seq=0, payload=b"\x01")
    # Execute
    wire = encode_frame(frame)
    # Assert
    assert wire.hex(" ") == "03 01 01 02 01 04 01 f0 c6 00"
    assert wire.count(0) == 1 and wire.endswith(b"\x00")


def test_decoder_reassembles_frames_split_anywhere() -> None:
    wire = encode_frame(Frame(2, 1, b"\x00abc\x00")) + encode_frame(Frame(3, 2, b""))
    decoder = FrameDecoder()
    got = [frame for byte in wire for frame in decoder.feed(bytes([byte]))]
    assert got == [Frame(2, 1, b"\x00abc\x00"), Frame(3, 2, b"")]
    assert decoder.stats.frames == 2 and decoder.stats.errors == 0


def test_decoder_counts_bad_crc_and_keeps_going() -> None:
    wire = bytearray(encode_frame(Frame(5, 9, b"hello")))
    wire[6] ^= 0x10
    decoder = FrameDecoder()
    got = decoder.feed(bytes(wire) + encode_frame(Frame(5, 10, b"ok")))
    assert got == [Frame(5, 10, b"ok")]
    assert decoder.stats.crc_errors == 1


def test_decoder_counts_garbage_and_truncation() -> None:
    good = encode_frame(Frame(7, 1, b"payload"))
    decoder = FrameDecoder()
    got = decoder.feed(b"\xff\xfe\x00" + good[:5] + b"\x00" + good)
    assert got == [Frame(7, 1, b"payload")]
    assert decoder.stats.errors == 2


def test_decoder_bounds_frame_length() -> None:
    decoder = FrameDecoder(max_payload=16)
    flood = b"\x01" * (max_encoded_length(16) + 10)
    assert decoder.feed(flood + b"\x00" + encode_frame(Frame(1, 1, b"x"))) == [Frame(1, 1, b"x")]
    assert decoder.stats.oversize == 1


def test_decode_frame_rejects_other_protocol_version() -> None:
    with pytest.raises(FrameError, match="version"):
        decode_frame(encode_frame(Frame(1, 1, b"", version=2)))


@given(frames)
def test_round_trip_any_frame(frame: Frame) -> None:
    assert decode_frame(encode_frame(frame)) == frame


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_decode_frame_raises_only_frame_error(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_frame(data)


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=300), max_size=8), frames)
def test_decoder_feed_never_raises_and_recovers(chunks: list[bytes], frame: Frame) -> None:
    decoder = FrameDecoder(max_payload=MAX_PAYLOAD)
    for chunk in chunks:
        decoder.feed(chunk)
    got = decoder.feed(b"\x00" + encode_frame(frame))
    assert got[-1:] == [frame]


@settings(max_examples=200, derandomize=True)
@given(frames, st.integers(0, 10_000), st.integers(0, 7))
def test_single_bit_flip_is_detected(frame: Frame, where: int, bit: int) -> None:
    # A flip in a COBS code byte scrambles several raw bytes, so this is the CRC's 1 - 2^-16
    # detection, checked on a fixed sample.
    wire = bytearray(encode_frame(frame))
    wire[where % (len(wire) - 1)] ^= 1 << bit
    decoder = FrameDecoder()
    assert decoder.feed(bytes(wire) + b"\x00") == []
    assert decoder.stats.errors >= 1
