"""Shared test vectors: frames whose wire bytes the Python and C framing must both produce.

`python -m firmware_bridge.protocol.test_vectors` prints the Markdown table that
docs/serial-protocol.md embeds between its `<!-- vectors -->` markers (a test keeps them equal).
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

from firmware_bridge.protocol import commands as cmd
from firmware_bridge.protocol.framing import Frame, encode_frame, frame_to_raw

BEGIN_MARKER = "<!-- vectors:begin -->"
END_MARKER = "<!-- vectors:end -->"


def vector_messages() -> list[tuple[str, Frame]]:
    """Named frames covering every message type and the COBS edge cases."""
    window = np.arange(-6, 6, dtype=np.int8).reshape(4, 3)
    named: list[tuple[str, cmd.Message, int]] = [
        ("HELLO", cmd.Hello(), 0),
        ("INFO", cmd.Info("nano33ble", "1.0", bytes(range(32)), 65536, 3000, 0, 16, 3, 3, 50.0), 0),
        ("ACK next offset 1024", cmd.Ack(1024), 7),
        ("NACK bad frame", cmd.Nack(), 255),
        ("ERROR hash mismatch", cmd.ErrorReply(cmd.ErrorCode.HASH_MISMATCH, "sha256"), 9),
        ("LOG", cmd.Log(1, "boot"), 3),
        ("RESET", cmd.Reset(), 4),
        ("STREAM_START 10", cmd.StreamStart(10), 5),
        ("STREAM_STOP", cmd.StreamStop(), 6),
        (
            "SENSOR_FRAME int16",
            cmd.SensorFrame(1_000_000, np.array([[1, -1], [256, 0]], np.int16)),
            1,
        ),
        ("LABEL_EVENT", cmd.LabelEvent(2, 20_000), 2),
        ("LABEL_REQUEST", cmd.LabelRequest(), 8),
        ("INFER_REQUEST int8 4x3", cmd.InferRequest(window), 10),
        ("INFER_RESULT", cmd.InferResult(1, np.array([-128, 127, 0], np.int8), 1500), 10),
        ("MODEL_BEGIN", cmd.ModelBegin(4, hashlib.sha256(b"tfl3").digest()), 11),
        ("MODEL_CHUNK", cmd.ModelChunk(0, b"tfl3"), 12),
        ("MODEL_COMMIT", cmd.ModelCommit(), 13),
        ("HEAD_GET", cmd.HeadGet(), 14),
        (
            "HEAD_SET 1x2 + 2",
            cmd.HeadSet(5, (np.array([[0.5, -1.0]], np.float32), np.zeros(2, np.float32))),
            15,
        ),
    ]
    vectors = [(name, message.to_frame(seq)) for name, message, seq in named]
    vectors += [
        ("raw: 253 non-zero bytes", Frame(0x06, 0, bytes([1]) * 253)),
        ("raw: zeros only", Frame(0x06, 0, bytes(8))),
    ]
    return vectors


def render_markdown() -> str:
    """The test-vector table of docs/serial-protocol.md."""
    lines = [
        "| name | type | seq | raw frame (header + payload + CRC) | on the wire (COBS + 0x00) |",
        "|---|---|---|---|---|",
    ]
    for name, frame in vector_messages():
        raw, wire = frame_to_raw(frame).hex(" "), encode_frame(frame).hex(" ")
        if len(wire) > 120:
            raw, wire = _shorten(raw), _shorten(wire)
        lines.append(f"| {name} | 0x{frame.type:02x} | {frame.seq} | `{raw}` | `{wire}` |")
    return "\n".join(lines)


def _shorten(text: str) -> str:
    return f"{text[:48]} … {text[-24:]} ({len(text.split())} B)"


if __name__ == "__main__":
    sys.stdout.write(render_markdown() + "\n")
