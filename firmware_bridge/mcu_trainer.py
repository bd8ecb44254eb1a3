"""The host's side of training on the microcontroller: fill its ring, train, read the delta.

Thin calls over `HostDriver.request` in the order docs/serial-protocol.md section 7 gives:
the host never trains, it carries embeddings in and the firmware's int8 delta out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_bridge.errors import PayloadError
from firmware_bridge.host_driver import HostDriver
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.protocol.int8_record import Int8Record, read_int8_records
from firmware_bridge.protocol.training_messages import DeltaForm

PUSH_BYTES = 8192  # EMBED_PUSH payload per frame (the protocol allows 16 KiB)
READ_BYTES = 8192  # DELTA_READ chunk
HEAD_TENSORS = 4


@dataclass(frozen=True)
class McuUpdate:
    """A round trained on the device: what TRAIN_RESULT said and the int8 delta records."""

    result: cmd.TrainResult
    records: list[Int8Record]


def reset_ring(driver: HostDriver, width: int, scale: float, zero_point: int) -> int:
    """Empty the device's ring for int8 embeddings of `width`; returns its capacity."""
    return driver.request(cmd.EmbedReset(width, scale, zero_point), cmd.Ack).value


def push_embeddings(driver: HostDriver, embeddings: np.ndarray, labels: np.ndarray) -> int:
    """Append int8 embeddings [N, width] with labels [N] (oldest first); returns entries held."""
    rows = np.asarray(embeddings, np.int8)
    per_frame = max(1, PUSH_BYTES // (1 + rows.shape[1]))
    held = 0
    for start in range(0, len(rows), per_frame):
        stop = start + per_frame
        held = driver.request(cmd.EmbedPush(rows[start:stop], labels[start:stop]), cmd.Ack).value
    return held


def label_last_inference(driver: HostDriver, label: int) -> int:
    """Keep the device's embedding of the window it inferred last; returns entries held."""
    return driver.request(cmd.InferLabel(label), cmd.Ack).value


def train_round(driver: HostDriver, request: cmd.TrainRound) -> McuUpdate:
    """Train the round on the device and read its int8 delta back."""
    result = driver.request(request, cmd.TrainResult)
    data = read_delta(driver, request.round_id, DeltaForm.INT8_RECORDS, result.records_bytes)
    return McuUpdate(result, read_int8_records(data, HEAD_TENSORS))


def read_delta(driver: HostDriver, round_id: int, form: DeltaForm, size: int) -> bytes:
    """`size` bytes of a round's delta, chunk by chunk."""
    data = bytearray()
    while len(data) < size:
        chunk = driver.request(cmd.DeltaRead(round_id, form, len(data), READ_BYTES), cmd.DeltaChunk)
        if chunk.offset != len(data) or not chunk.data:
            raise PayloadError(f"DELTA_CHUNK at {chunk.offset}, expected {len(data)}")
        data += chunk.data
    return bytes(data)


def read_float_delta(driver: HostDriver, result: cmd.TrainResult) -> np.ndarray:
    """The float32 delta (all tensors flat, in head order), for checks and benches."""
    data = read_delta(driver, result.round_id, DeltaForm.FLOAT32, 4 * result.params)
    return np.frombuffer(data, "<f4").astype(np.float32)
