"""Byte-exact scripted conversations with the C firmware under QEMU (mps2-an386).

The same style as test_bridge_conversation.py (gen_* builders, expect_frame), on the UART0
socket of a freshly flashed board: fixture backbone and a head in slot 0.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qemu_support import (
    CONFIG,
    board,
    expect_frame,
    fixture_embedding,
    fixture_model,
    flash_file,
    gen_message,
    head_scores,
    make_head,
    read_message,
)

from firmware_bridge.firmware_build import FirmwareImage
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.protocol.framing import Frame, encode_frame
from firmware_bridge.qemu_mcu import QemuMcu

pytestmark = pytest.mark.firmware
MODEL = fixture_model(seed=0)
HEAD = make_head(seed=0)


@pytest.fixture
def mcu(firmware_image: FirmwareImage, tmp_path: Path) -> Iterator[QemuMcu]:
    flash = flash_file(tmp_path / "flash.bin", firmware_image, MODEL, HEAD)
    with board(firmware_image, flash, tmp_path / "qemu") as running:
        yield running


@pytest.fixture
def link(mcu: QemuMcu) -> socket.socket:
    assert mcu.link is not None
    expect_frame(mcu.link, gen_message(0, cmd.Log(2, "boot: model bound")))
    return mcu.link


def window_int8(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, (16, 3), dtype=np.int8)


def test_hello_answers_info_bytes(link: socket.socket) -> None:
    # Prepare
    info = cmd.Info(
        board="qemu-mps2-an386",
        firmware_version="iomt-fw-1.1",
        model_sha256=hashlib.sha256(MODEL).digest(),
        arena_bytes=0,
        model_bytes=len(MODEL),
        input_dtype=cmd.DType.INT8,
        window_length=16,
        num_channels=3,
        num_classes=3,
        sample_rate_hz=200.0,
        training_version=1,
    )
    # Execute
    link.sendall(gen_message(0, cmd.Hello()))
    # Assert
    expect_frame(link, gen_message(0, info))


def test_inference_runs_backbone_then_head_and_retransmission_is_replayed(
    link: socket.socket,
) -> None:
    # Prepare
    window = window_int8(1)
    expected = head_scores(HEAD, fixture_embedding(MODEL, window))
    # Execute
    link.sendall(gen_message(7, cmd.InferRequest(window)))
    reply = read_message(link)
    link.sendall(gen_message(7, cmd.InferRequest(window)))
    # Assert
    assert isinstance(reply, cmd.InferResult) and reply.scores.dtype == np.float32
    np.testing.assert_allclose(reply.scores, expected, rtol=1e-5, atol=1e-6)
    assert reply.predicted_class == int(np.argmax(expected))
    expect_frame(link, gen_message(7, reply))  # the cached bytes, not a second run


def test_float_window_is_normalised_and_quantised_on_the_device(link: socket.socket) -> None:
    # Prepare: sensor units; the int8 window numpy quantises the same way (scale 0.1)
    window = np.random.default_rng(2).normal(0, 1.5, (16, 3)).astype(np.float32)
    normalised = (window - np.float32(CONFIG.mean)) / np.float32(CONFIG.std)
    quantised = np.clip(np.round(normalised / np.float32(0.1)), -128, 127).astype(np.int8)
    # Execute
    link.sendall(gen_message(1, cmd.InferRequest(window)))
    from_float = read_message(link)
    link.sendall(gen_message(2, cmd.InferRequest(quantised)))
    from_int8 = read_message(link)
    # Assert
    assert isinstance(from_float, cmd.InferResult) and isinstance(from_int8, cmd.InferResult)
    assert from_float.scores.tobytes() == from_int8.scores.tobytes()


def test_wrong_shape_is_an_error_reply(link: socket.socket) -> None:
    link.sendall(gen_message(1, cmd.InferRequest(np.zeros((8, 3), np.int8))))
    error = cmd.ErrorReply(
        cmd.ErrorCode.SHAPE_MISMATCH, "window (8, 3) but the model takes (16, 3)"
    )
    expect_frame(link, gen_message(1, error))


def test_corrupted_model_is_never_committed(link: socket.socket) -> None:
    # Prepare
    model = fixture_model(seed=1)
    # Execute: announce the right hash, then send one byte altered
    link.sendall(gen_message(1, cmd.ModelBegin(len(model), hashlib.sha256(model).digest())))
    expect_frame(link, gen_message(1, cmd.Ack(0)))
    link.sendall(gen_message(2, cmd.ModelChunk(0, model[:10])))
    expect_frame(link, gen_message(2, cmd.Ack(10)))
    link.sendall(gen_message(3, cmd.ModelChunk(10, b"\x7f" + model[11:])))
    expect_frame(link, gen_message(3, cmd.Ack(len(model))))
    link.sendall(gen_message(4, cmd.ModelCommit()))
    # Assert
    error = cmd.ErrorReply(cmd.ErrorCode.HASH_MISMATCH, "SHA-256 mismatch; model not committed")
    expect_frame(link, gen_message(4, error))
    link.sendall(gen_message(0, cmd.Hello()))
    info = read_message(link)
    assert isinstance(info, cmd.Info) and info.model_sha256 == hashlib.sha256(MODEL).digest()


def test_upload_commits_new_model_with_repeated_chunk(link: socket.socket) -> None:
    model = fixture_model(seed=3)
    link.sendall(gen_message(1, cmd.ModelBegin(len(model), hashlib.sha256(model).digest())))
    expect_frame(link, gen_message(1, cmd.Ack(0)))
    for seq, offset in ((2, 0), (3, 0), (4, 20)):  # chunk 0 twice (a host's retry), then the rest
        link.sendall(gen_message(seq, cmd.ModelChunk(offset, model[offset : offset + 20])))
        expect_frame(link, gen_message(seq, cmd.Ack(min(offset + 20, len(model)))))
    link.sendall(gen_message(5, cmd.ModelCommit()))
    expect_frame(link, gen_message(5, cmd.Ack(len(model))))
    expect_frame(link, gen_message(1, cmd.Log(1, "model committed")))
    window = window_int8(4)
    link.sendall(gen_message(6, cmd.InferRequest(window)))
    reply = read_message(link)
    assert isinstance(reply, cmd.InferResult)
    expected = head_scores(HEAD, fixture_embedding(model, window))
    np.testing.assert_allclose(reply.scores, expected, rtol=1e-5, atol=1e-6)


def test_model_that_does_not_bind_keeps_the_old_one(link: socket.socket) -> None:
    model = b"not a backbone of this firmware"
    link.sendall(gen_message(1, cmd.ModelBegin(len(model), hashlib.sha256(model).digest())))
    expect_frame(link, gen_message(1, cmd.Ack(0)))
    link.sendall(gen_message(2, cmd.ModelChunk(0, model)))
    expect_frame(link, gen_message(2, cmd.Ack(len(model))))
    link.sendall(gen_message(3, cmd.ModelCommit()))
    error = cmd.ErrorReply(
        cmd.ErrorCode.INVOKE_FAILED, "model does not match this firmware's backbone plan"
    )
    expect_frame(link, gen_message(3, error))
    link.sendall(gen_message(4, cmd.InferRequest(window_int8(5))))
    assert isinstance(read_message(link), cmd.InferResult)


def test_chunk_beyond_received_bytes_and_too_large_model_are_refused(link: socket.socket) -> None:
    link.sendall(gen_message(1, cmd.ModelBegin(50, bytes(32))))
    expect_frame(link, gen_message(1, cmd.Ack(0)))
    link.sendall(gen_message(2, cmd.ModelChunk(20, bytes(10))))
    error = cmd.ErrorReply(cmd.ErrorCode.BAD_OFFSET, "chunk at 20, expected 0")
    expect_frame(link, gen_message(2, error))
    link.sendall(gen_message(3, cmd.ModelBegin(2_000_000, bytes(32))))
    reply = read_message(link)
    assert isinstance(reply, cmd.ErrorReply) and reply.code == cmd.ErrorCode.TOO_LARGE


def test_head_set_is_applied_and_head_get_returns_it(link: socket.socket) -> None:
    # Prepare
    head = make_head(seed=9, version=42)
    window = window_int8(6)
    # Execute
    link.sendall(gen_message(5, head))
    expect_frame(link, gen_message(5, cmd.Ack(42)))
    link.sendall(gen_message(6, cmd.HeadGet()))
    expect_frame(link, gen_message(6, head))
    link.sendall(gen_message(7, cmd.InferRequest(window)))
    reply = read_message(link)
    # Assert: the new head's scores, not the flashed one's
    assert isinstance(reply, cmd.InferResult)
    expected = head_scores(head, fixture_embedding(MODEL, window))
    np.testing.assert_allclose(reply.scores, expected, rtol=1e-5, atol=1e-6)


def test_head_of_wrong_shape_is_refused(link: socket.socket) -> None:
    tensors = (np.ones((5, 6), np.float32), np.ones(6, np.float32))
    tensors += (np.ones((6, 3), np.float32), np.ones(3, np.float32))
    link.sendall(gen_message(1, cmd.HeadSet(1, tensors)))
    error = cmd.ErrorReply(
        cmd.ErrorCode.SHAPE_MISMATCH, "head takes 5 inputs but the backbone gives 4"
    )
    expect_frame(link, gen_message(1, error))


def test_unknown_type_and_damaged_frame(link: socket.socket) -> None:
    link.sendall(encode_frame(Frame(0x7E, 9, b"")))
    error = cmd.ErrorReply(cmd.ErrorCode.UNKNOWN_TYPE, "unknown type 0x7e")
    expect_frame(link, gen_message(9, error))
    damaged = bytearray(gen_message(1, cmd.Hello()))
    damaged[3] ^= 0x40
    link.sendall(bytes(damaged))
    expect_frame(link, gen_message(0xFF, cmd.Nack(cmd.NackReason.BAD_FRAME)))


def test_reset_reboots_and_loses_staged_upload(link: socket.socket) -> None:
    link.sendall(gen_message(1, cmd.ModelBegin(4, bytes(32))))
    expect_frame(link, gen_message(1, cmd.Ack(0)))
    link.sendall(gen_message(2, cmd.Reset()))
    expect_frame(link, gen_message(2, cmd.Ack()))
    expect_frame(link, gen_message(0, cmd.Log(2, "boot: model bound")))  # seq restarts at boot
    link.sendall(gen_message(3, cmd.ModelChunk(0, b"abcd")))
    error = cmd.ErrorReply(cmd.ErrorCode.NO_UPLOAD, "no upload in progress (send MODEL_BEGIN)")
    expect_frame(link, gen_message(3, error))


def test_stream_sends_sensor_frames_and_label_events(mcu: QemuMcu, link: socket.socket) -> None:
    # Prepare: the host plays the sensor: a button press (label 2), then 12 samples
    samples = np.arange(36, dtype="<f4").reshape(12, 3)
    link.sendall(gen_message(1, cmd.StreamStart(5)))
    expect_frame(link, gen_message(1, cmd.Ack()))
    assert mcu.sensors is not None
    # Execute
    mcu.sensors.sendall(b"L\x02\x00" + b"".join(b"S" + row.tobytes() for row in samples))
    messages = [read_message(link) for _ in range(3)]
    link.sendall(gen_message(2, cmd.StreamStop()))
    tail = [read_message(link) for _ in range(1)]
    # Assert
    label, first, second = messages
    assert isinstance(label, cmd.LabelEvent) and label.label == 2
    assert isinstance(first, cmd.SensorFrame) and isinstance(second, cmd.SensorFrame)
    np.testing.assert_array_equal(np.concatenate([first.samples, second.samples]), samples[:10])
    assert first.timestamp_us == label.timestamp_us
    assert second.timestamp_us - first.timestamp_us == 25_000  # 5 samples at 200 Hz
    assert tail == [cmd.Ack()]


def test_label_request_presses_button_for_current_activity(
    mcu: QemuMcu, link: socket.socket
) -> None:
    link.sendall(gen_message(1, cmd.LabelRequest()))
    error = cmd.ErrorReply(cmd.ErrorCode.NO_MODEL, "no labelled sensor source")
    expect_frame(link, gen_message(1, error))
    assert mcu.sensors is not None
    mcu.sensors.sendall(b"L\x01\x00")
    reply: cmd.Message = error
    for seq in range(2, 200):  # until the press has come through UART1
        link.sendall(gen_message(seq, cmd.LabelRequest()))
        reply = read_message(link)
        if reply != error:
            break
    assert reply == cmd.Ack()
    event = read_message(link)
    assert isinstance(event, cmd.LabelEvent) and event.label == 1
