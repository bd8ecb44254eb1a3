"""Byte-exact scripted conversations with the emulated MCU (gen_* builders, expect_frame).

The host end of an in-memory link writes exact request bytes and expects exact reply bytes,
as a firmware engineer would check a board with a serial terminal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.emulated_mcu import EmulatedMcu
from firmware_bridge.emulator_service import EmulatorService
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.protocol.framing import Frame, encode_frame
from firmware_bridge.sensor_source import load_window_dataset
from firmware_bridge.transport import MemoryEndpoint, memory_link


def gen_hello(seq: int) -> bytes:
    return encode_frame(cmd.Hello().to_frame(seq))


def gen_infer(seq: int, window: np.ndarray) -> bytes:
    return encode_frame(cmd.InferRequest(window).to_frame(seq))


def gen_model_begin(seq: int, model: bytes, digest: bytes | None = None) -> bytes:
    message = cmd.ModelBegin(len(model), digest or hashlib.sha256(model).digest())
    return encode_frame(message.to_frame(seq))


def gen_model_chunk(seq: int, offset: int, data: bytes) -> bytes:
    return encode_frame(cmd.ModelChunk(offset, data).to_frame(seq))


def gen_message(seq: int, message: cmd.Message) -> bytes:
    return encode_frame(message.to_frame(seq))


def expect_frame(link: MemoryEndpoint, expected: bytes) -> None:
    """Read one delimited frame from the link and compare it byte for byte."""
    received = bytearray()
    while not received.endswith(b"\x00"):
        chunk = link.read(1)
        assert chunk, f"timed out; got {bytes(received).hex(' ')} wanting {expected.hex(' ')}"
        received += chunk
    assert bytes(received).hex(" ") == expected.hex(" ")


@pytest.fixture
def link(mcu: EmulatedMcu) -> Iterator[MemoryEndpoint]:
    host_end, device_end = memory_link(timeout=2.0)
    with EmulatorService(mcu, device_end):
        yield host_end


def test_hello_answers_info_bytes(link: MemoryEndpoint) -> None:
    # Prepare
    info = cmd.Info(
        board="nano33ble",
        firmware_version="iomt-emu-1.0",
        model_sha256=hashlib.sha256(b"fake-model").digest(),
        arena_bytes=192 * 1024,
        model_bytes=10,
        input_dtype=cmd.DType.INT8,
        window_length=16,
        num_channels=3,
        num_classes=3,
        sample_rate_hz=200.0,
    )
    # Execute
    link.write(gen_hello(0))
    # Assert
    expect_frame(link, gen_message(0, info))


def test_inference_and_its_retransmission_get_identical_replies(link: MemoryEndpoint) -> None:
    window = np.ones((16, 3), np.int8)
    window[:, 1] = -2
    result = cmd.InferResult(0, np.array([16, -32, 16], np.int8), latency_us=5)
    link.write(gen_infer(7, window))
    expect_frame(link, gen_message(7, result))
    link.write(gen_infer(7, window))
    expect_frame(link, gen_message(7, result))


def test_wrong_shape_is_an_error_reply(link: MemoryEndpoint) -> None:
    link.write(gen_infer(1, np.zeros((8, 3), np.int8)))
    error = cmd.ErrorReply(
        cmd.ErrorCode.SHAPE_MISMATCH, "window (8, 3) but the model takes (16, 3)"
    )
    expect_frame(link, gen_message(1, error))


def test_corrupted_model_is_never_committed(link: MemoryEndpoint, mcu: EmulatedMcu) -> None:
    # Prepare
    model = bytes(range(200))
    before = mcu.flash.committed_sha256
    # Execute: announce the right hash, then send one byte altered
    link.write(gen_model_begin(1, model))
    expect_frame(link, gen_message(1, cmd.Ack(0)))
    link.write(gen_model_chunk(2, 0, model[:100]))
    expect_frame(link, gen_message(2, cmd.Ack(100)))
    link.write(gen_model_chunk(3, 100, b"\xff" + model[101:]))
    expect_frame(link, gen_message(3, cmd.Ack(200)))
    link.write(gen_message(4, cmd.ModelCommit()))
    # Assert
    error = cmd.ErrorReply(cmd.ErrorCode.HASH_MISMATCH, "SHA-256 mismatch; model not committed")
    expect_frame(link, gen_message(4, error))
    assert mcu.flash.committed_sha256 == before and mcu.flash.rejected_commits == 1


def test_chunk_beyond_received_bytes_is_refused(link: MemoryEndpoint) -> None:
    link.write(gen_model_begin(1, bytes(50)))
    expect_frame(link, gen_message(1, cmd.Ack(0)))
    link.write(gen_model_chunk(2, 20, bytes(10)))
    expect_frame(
        link, gen_message(2, cmd.ErrorReply(cmd.ErrorCode.BAD_OFFSET, "chunk at 20, expected 0"))
    )


def test_head_set_then_get(link: MemoryEndpoint) -> None:
    head = cmd.HeadSet(3, (np.eye(2, dtype=np.float32), np.ones(2, np.float32)))
    link.write(gen_message(5, head))
    expect_frame(link, gen_message(5, cmd.Ack(3)))
    link.write(gen_message(6, cmd.HeadGet()))
    expect_frame(link, gen_message(6, head))


def test_unknown_type_and_damaged_frame(link: MemoryEndpoint) -> None:
    link.write(encode_frame(Frame(0x7E, 9, b"")))
    expect_frame(
        link, gen_message(9, cmd.ErrorReply(cmd.ErrorCode.UNKNOWN_TYPE, "unknown type 0x7e"))
    )
    damaged = bytearray(gen_hello(1))
    damaged[3] ^= 0x40
    link.write(bytes(damaged))
    expect_frame(link, gen_message(0xFF, cmd.Nack(cmd.NackReason.BAD_FRAME)))


def test_stream_replays_dataset_with_label_events(mcu: EmulatedMcu, replay_path: Path) -> None:
    # Prepare: pure core, explicit time (200 Hz replay, 16-sample windows)
    dataset = load_window_dataset(replay_path)
    mcu.power_on(0.0)
    ack = mcu.receive(cmd.StreamStart(8).to_frame(1), now=0.0)
    # Execute
    frames = mcu.tick(now=0.1)  # 20 samples due: two full frames of 8 go out
    frames += mcu.tick(now=0.14)  # 28 due: the third frame starts the second window
    # Assert
    assert ack == [cmd.Ack().to_frame(1)]
    messages = [cmd.message_from_frame(frame) for frame in frames]
    assert [type(m).__name__ for m in messages] == [
        "LabelEvent",
        "SensorFrame",
        "SensorFrame",
        "LabelEvent",
        "SensorFrame",
    ]
    assert messages[0] == cmd.LabelEvent(int(dataset.y[0]), 0)
    assert messages[3] == cmd.LabelEvent(int(dataset.y[1]), 80_000)
    samples = np.concatenate([m.samples for m in messages if isinstance(m, cmd.SensorFrame)])
    np.testing.assert_array_equal(samples, np.concatenate([dataset.X[0], dataset.X[1][:8]]))
    assert [m.timestamp_us for m in messages if isinstance(m, cmd.SensorFrame)] == [
        0,
        40_000,
        80_000,
    ]


def test_label_request_presses_button_for_current_window(mcu: EmulatedMcu) -> None:
    mcu.power_on(0.0)
    frames = mcu.receive(cmd.LabelRequest().to_frame(2), now=0.5)
    assert frames[0] == cmd.Ack().to_frame(2)
    assert cmd.message_from_frame(frames[1]) == cmd.LabelEvent(0, 500_000)


def test_reset_loses_staged_upload(mcu: EmulatedMcu) -> None:
    mcu.receive(cmd.ModelBegin(4, bytes(32)).to_frame(1), now=0.0)
    replies = mcu.receive(cmd.Reset().to_frame(2), now=0.0)
    assert replies[0] == cmd.Ack().to_frame(2)
    assert isinstance(cmd.message_from_frame(replies[1]), cmd.Log)
    chunk = mcu.receive(cmd.ModelChunk(0, b"abcd").to_frame(3), now=0.0)
    reply = cmd.message_from_frame(chunk[0])
    assert isinstance(reply, cmd.ErrorReply) and reply.code == cmd.ErrorCode.NO_UPLOAD
