"""Session and control messages: HELLO/INFO, ACK/NACK, ERROR, LOG, RESET."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from firmware_bridge.protocol.framing import PROTOCOL_VERSION
from firmware_bridge.protocol.message_base import (
    DType,
    Message,
    MessageType,
    NackReason,
)
from firmware_bridge.protocol.payload import PayloadReader, PayloadWriter


@dataclass(frozen=True)
class Hello(Message):
    """Host greets the device (resets its duplicate cache); the device answers INFO."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    protocol_version: int = PROTOCOL_VERSION

    def to_payload(self) -> bytes:
        return bytes([self.protocol_version])

    @classmethod
    def from_payload(cls, payload: bytes) -> Hello:
        reader = PayloadReader(payload, "HELLO")
        version = reader.u8()
        reader.done()
        return cls(version)


@dataclass(frozen=True)
class Info(Message):
    """What the device is and which model it runs (the reply to HELLO)."""

    TYPE: ClassVar[MessageType] = MessageType.INFO
    board: str
    firmware_version: str
    model_sha256: bytes
    arena_bytes: int
    model_bytes: int = 0
    input_dtype: int = DType.INT8
    window_length: int = 0
    num_channels: int = 0
    num_classes: int = 0
    sample_rate_hz: float = 0.0
    training_version: int = 0  # 0: cannot train; else the version of the training messages

    _LAYOUT: ClassVar[str] = "IIBHHHf"

    def to_payload(self) -> bytes:
        writer = PayloadWriter().text(self.board).text(self.firmware_version)
        writer.raw(self.model_sha256.ljust(32, b"\x00")[:32])
        writer.pack(
            self._LAYOUT,
            self.arena_bytes,
            self.model_bytes,
            self.input_dtype,
            self.window_length,
            self.num_channels,
            self.num_classes,
            self.sample_rate_hz,
        )
        if self.training_version:  # a trailing byte firmware without training leaves out
            writer.pack("B", self.training_version)
        return writer.to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> Info:
        reader = PayloadReader(payload, "INFO")
        board, firmware, digest = reader.text(), reader.text(), reader.take(32)
        arena, size, dtype, length, channels, classes, rate = reader.unpack(cls._LAYOUT)
        training = reader.u8() if reader.rest_length() else 0
        reader.done()
        return cls(
            board=board,
            firmware_version=firmware,
            model_sha256=digest,
            arena_bytes=int(arena),  # type: ignore[call-overload]
            model_bytes=int(size),  # type: ignore[call-overload]
            input_dtype=int(dtype),  # type: ignore[call-overload]
            window_length=int(length),  # type: ignore[call-overload]
            num_channels=int(channels),  # type: ignore[call-overload]
            num_classes=int(classes),  # type: ignore[call-overload]
            sample_rate_hz=float(rate),  # type: ignore[arg-type]
            training_version=training,
        )

    @property
    def has_model(self) -> bool:
        """False while no model is committed (all-zero hash)."""
        return any(self.model_sha256)


@dataclass(frozen=True)
class Ack(Message):
    """Request accepted; `value` carries a number when the request needs one (next offset)."""

    TYPE: ClassVar[MessageType] = MessageType.ACK
    value: int = 0

    def to_payload(self) -> bytes:
        return PayloadWriter().pack("I", self.value).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> Ack:
        reader = PayloadReader(payload, "ACK")
        (value,) = reader.unpack("I")
        reader.done()
        return cls(int(value))  # type: ignore[call-overload]


@dataclass(frozen=True)
class Nack(Message):
    """A frame arrived damaged or could not be taken now: the sender retransmits at once."""

    TYPE: ClassVar[MessageType] = MessageType.NACK
    reason: int = NackReason.BAD_FRAME

    def to_payload(self) -> bytes:
        return bytes([self.reason])

    @classmethod
    def from_payload(cls, payload: bytes) -> Nack:
        reader = PayloadReader(payload, "NACK")
        reason = reader.u8()
        reader.done()
        return cls(reason)


@dataclass(frozen=True)
class ErrorReply(Message):
    """The request was understood but failed (an application error, not a transport one)."""

    TYPE: ClassVar[MessageType] = MessageType.ERROR
    code: int
    message: str = ""

    def to_payload(self) -> bytes:
        return PayloadWriter().pack("H", self.code).text(self.message).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> ErrorReply:
        reader = PayloadReader(payload, "ERROR")
        (code,) = reader.unpack("H")
        message = reader.text()
        reader.done()
        return cls(int(code), message)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Log(Message):
    """A line of device log (level 0 debug .. 3 error)."""

    TYPE: ClassVar[MessageType] = MessageType.LOG
    level: int
    text: str

    def to_payload(self) -> bytes:
        return bytes([self.level]) + self.text.encode("utf-8")

    @classmethod
    def from_payload(cls, payload: bytes) -> Log:
        reader = PayloadReader(payload, "LOG")
        level = reader.u8()
        return cls(level, reader.rest().decode("utf-8", errors="replace"))


@dataclass(frozen=True)
class Reset(Message):
    """Ask the device to reboot (it ACKs first)."""

    TYPE: ClassVar[MessageType] = MessageType.RESET
