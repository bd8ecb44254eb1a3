"""Sensor streaming, labels and inference messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from firmware_bridge.protocol.message_base import (
    Message,
    MessageType,
    array_bytes,
    dtype_code,
    read_array,
)
from firmware_bridge.protocol.payload import PayloadReader, PayloadWriter


@dataclass(frozen=True)
class StreamStart(Message):
    """Start streaming SENSOR_FRAMEs, `samples_per_frame` samples each (0: device default)."""

    TYPE: ClassVar[MessageType] = MessageType.STREAM_START
    samples_per_frame: int = 0

    def to_payload(self) -> bytes:
        return PayloadWriter().pack("H", self.samples_per_frame).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> StreamStart:
        reader = PayloadReader(payload, "STREAM_START")
        (count,) = reader.unpack("H")
        reader.done()
        return cls(int(count))  # type: ignore[call-overload]


@dataclass(frozen=True)
class StreamStop(Message):
    """Stop streaming sensor frames."""

    TYPE: ClassVar[MessageType] = MessageType.STREAM_STOP


@dataclass(frozen=True)
class SensorFrame(Message):
    """Consecutive multi-channel samples; `timestamp_us` is the first sample's time."""

    TYPE: ClassVar[MessageType] = MessageType.SENSOR_FRAME
    timestamp_us: int
    samples: np.ndarray = field(compare=False)  # (samples, channels) int16 or float32

    def to_payload(self) -> bytes:
        count, channels = self.samples.shape
        writer = PayloadWriter().pack(
            "QBHB", self.timestamp_us, dtype_code(self.samples), count, channels
        )
        return writer.raw(array_bytes(self.samples)).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> SensorFrame:
        reader = PayloadReader(payload, "SENSOR_FRAME")
        timestamp, code, count, channels = reader.unpack("QBHB")
        samples = read_array(reader, int(code), (int(count), int(channels)))  # type: ignore[call-overload]
        reader.done()
        return cls(int(timestamp), samples)  # type: ignore[call-overload]


@dataclass(frozen=True)
class LabelEvent(Message):
    """A button press: the wearer says the current activity has label `label`."""

    TYPE: ClassVar[MessageType] = MessageType.LABEL_EVENT
    label: int
    timestamp_us: int

    def to_payload(self) -> bytes:
        return PayloadWriter().pack("HQ", self.label, self.timestamp_us).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> LabelEvent:
        reader = PayloadReader(payload, "LABEL_EVENT")
        label, timestamp = reader.unpack("HQ")
        reader.done()
        return cls(int(label), int(timestamp))  # type: ignore[call-overload]


@dataclass(frozen=True)
class LabelRequest(Message):
    """Ask the device to press its button (emit a LABEL_EVENT) for the current window."""

    TYPE: ClassVar[MessageType] = MessageType.LABEL_REQUEST


@dataclass(frozen=True)
class InferRequest(Message):
    """Run the model on one window, (time, channels) int8 (quantised) or float32."""

    TYPE: ClassVar[MessageType] = MessageType.INFER_REQUEST
    window: np.ndarray = field(compare=False)  # (time, channels)

    def to_payload(self) -> bytes:
        length, channels = self.window.shape
        writer = PayloadWriter().pack("BHH", dtype_code(self.window), length, channels)
        return writer.raw(array_bytes(self.window)).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> InferRequest:
        reader = PayloadReader(payload, "INFER_REQUEST")
        code, length, channels = reader.unpack("BHH")
        window = read_array(reader, int(code), (int(length), int(channels)))  # type: ignore[call-overload]
        reader.done()
        return cls(window)


@dataclass(frozen=True)
class InferResult(Message):
    """The model's answer: predicted class, raw scores (int8 or float32) and latency."""

    TYPE: ClassVar[MessageType] = MessageType.INFER_RESULT
    predicted_class: int
    scores: np.ndarray = field(compare=False)  # (classes,)
    latency_us: int = 0

    def to_payload(self) -> bytes:
        writer = PayloadWriter().pack(
            "HIBH", self.predicted_class, self.latency_us, dtype_code(self.scores), self.scores.size
        )
        return writer.raw(array_bytes(self.scores)).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> InferResult:
        reader = PayloadReader(payload, "INFER_RESULT")
        predicted, latency, code, count = reader.unpack("HIBH")
        scores = read_array(reader, int(code), (int(count),))  # type: ignore[call-overload]
        reader.done()
        return cls(int(predicted), scores, int(latency))  # type: ignore[call-overload]
