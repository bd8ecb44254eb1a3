"""Every message type survives to_frame/from_frame; malformed payloads are PayloadErrors."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.errors import FrameError, PayloadError
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.protocol.framing import Frame
from firmware_bridge.protocol.test_vectors import vector_messages


@pytest.mark.parametrize("name, frame", vector_messages()[:-2], ids=lambda v: str(v)[:30])
def test_every_message_round_trips(name: str, frame: Frame) -> None:
    # Execute
    message = cmd.message_from_frame(frame)
    again = message.to_frame(frame.seq)
    # Assert
    assert again == frame
    assert type(message).from_frame(frame) == message


def test_arrays_round_trip_with_dtype() -> None:
    window = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    message = cmd.message_from_frame(cmd.InferRequest(window).to_frame(1))
    assert isinstance(message, cmd.InferRequest)
    np.testing.assert_array_equal(message.window, window)
    assert message.window.dtype == np.float32


def test_head_set_round_trip() -> None:
    tensors = (np.ones((3, 2), np.float32), np.arange(2, dtype=np.float32))
    message = cmd.message_from_frame(cmd.HeadSet(4, tensors).to_frame(0))
    assert isinstance(message, cmd.HeadSet) and message.version == 4
    for got, want in zip(message.tensors, tensors, strict=True):
        np.testing.assert_array_equal(got, want)


def test_unknown_type_is_payload_error() -> None:
    with pytest.raises(PayloadError, match="unknown message type"):
        cmd.message_from_frame(Frame(0x7F, 0, b""))


def test_short_payload_names_the_message() -> None:
    with pytest.raises(PayloadError, match="MODEL_BEGIN"):
        cmd.message_from_frame(Frame(cmd.MessageType.MODEL_BEGIN, 0, b"\x01\x02"))


def test_unknown_delta_form_is_payload_error() -> None:
    payload = (1).to_bytes(4, "little") + bytes([2]) + (0).to_bytes(4, "little") + b"\x40\x00"
    with pytest.raises(PayloadError, match="unknown delta form 2"):
        cmd.message_from_frame(Frame(cmd.MessageType.DELTA_READ, 0, payload))


def test_unsupported_array_dtype_is_refused() -> None:
    with pytest.raises(PayloadError, match="int64"):
        cmd.InferRequest(np.zeros((2, 2), np.int64)).to_frame(0)


@settings(max_examples=300)
@given(st.sampled_from(sorted(cmd.MESSAGE_CLASSES)), st.binary(max_size=200))
def test_random_payloads_raise_only_protocol_errors(frame_type: int, payload: bytes) -> None:
    with contextlib.suppress(FrameError):  # PayloadError is a FrameError
        cmd.message_from_frame(Frame(frame_type, 0, payload))


def test_protocol_document_carries_current_vectors() -> None:
    from pathlib import Path

    from firmware_bridge.protocol.test_vectors import BEGIN_MARKER, END_MARKER, render_markdown

    doc = (Path(__file__).parents[2] / "docs" / "serial-protocol.md").read_text()
    embedded = doc.split(BEGIN_MARKER)[1].split(END_MARKER)[0].strip()
    assert embedded == render_markdown().strip()
