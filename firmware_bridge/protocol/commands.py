"""Typed messages carried in frames: one frozen dataclass per message type.

Each message has `to_frame(seq)` and `from_frame(frame)` (symmetric), built from
`to_payload()` / `from_payload()`. `message_from_frame` picks the class from the frame type.
Byte layouts are documented in docs/serial-protocol.md; all integers are little-endian.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

import numpy as np

from firmware_bridge.errors import PayloadError
from firmware_bridge.protocol.framing import PROTOCOL_VERSION, Frame
from firmware_bridge.protocol.payload import PayloadReader, PayloadWriter


class MessageType(enum.IntEnum):
    """Frame `type` byte of each message."""

    HELLO = 0x01
    INFO = 0x02
    ACK = 0x03
    NACK = 0x04
    ERROR = 0x05
    LOG = 0x06
    RESET = 0x07
    SENSOR_FRAME = 0x10
    STREAM_START = 0x11
    STREAM_STOP = 0x12
    LABEL_EVENT = 0x13
    LABEL_REQUEST = 0x14
    INFER_REQUEST = 0x20
    INFER_RESULT = 0x21
    MODEL_BEGIN = 0x30
    MODEL_CHUNK = 0x31
    MODEL_COMMIT = 0x32
    HEAD_GET = 0x40
    HEAD_SET = 0x41


class ErrorCode(enum.IntEnum):
    """Codes in an ERROR reply."""

    UNKNOWN_TYPE = 1
    BAD_PAYLOAD = 2
    NO_MODEL = 3
    NO_UPLOAD = 4
    BAD_OFFSET = 5
    HASH_MISMATCH = 6
    TOO_LARGE = 7
    SHAPE_MISMATCH = 8
    INVOKE_FAILED = 9


class NackReason(enum.IntEnum):
    """Why a frame was not accepted (transport level)."""

    BAD_FRAME = 1
    BUSY = 2


class DType(enum.IntEnum):
    """Element type code of arrays in payloads."""

    INT8 = 0
    INT16 = 1
    FLOAT32 = 2


_NUMPY_DTYPES = {DType.INT8: np.int8, DType.INT16: np.int16, DType.FLOAT32: np.float32}
# Messages a device sends only as the reply to a request (the rest it sends on its own).
REPLY_TYPES = frozenset(
    {
        MessageType.INFO,
        MessageType.ACK,
        MessageType.NACK,
        MessageType.ERROR,
        MessageType.INFER_RESULT,
        MessageType.HEAD_SET,
    }
)


def dtype_code(array: np.ndarray) -> DType:
    """Wire code of an array's element type."""
    for code, numpy_type in _NUMPY_DTYPES.items():
        if array.dtype == numpy_type:
            return code
    raise PayloadError(f"arrays of {array.dtype} cannot travel; use int8, int16 or float32")


def _array_bytes(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()


def _read_array(reader: PayloadReader, code: int, shape: tuple[int, ...]) -> np.ndarray:
    try:
        dtype = np.dtype(_NUMPY_DTYPES[DType(code)]).newbyteorder("<")
    except ValueError:
        raise PayloadError(f"unknown dtype code {code}") from None
    count = int(np.prod(shape, dtype=np.int64))
    data = reader.take(count * dtype.itemsize)
    return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("=")).reshape(shape)


M = TypeVar("M", bound="Message")


@dataclass(frozen=True)
class Message:
    """Base of every message: frame conversion shared by all types."""

    TYPE: ClassVar[MessageType]

    def to_payload(self) -> bytes:
        """Payload bytes (empty for messages without fields)."""
        return b""

    @classmethod
    def from_payload(cls: type[M], payload: bytes) -> M:
        """Parse a payload; raise `PayloadError` when it does not match the layout."""
        PayloadReader(payload, cls.TYPE.name).done()
        return cls()

    def to_frame(self, seq: int) -> Frame:
        """A frame carrying this message with sequence number `seq`."""
        return Frame(type=int(self.TYPE), seq=seq, payload=self.to_payload())

    @classmethod
    def from_frame(cls: type[M], frame: Frame) -> M:
        """The message in `frame`; raise `PayloadError` for another type or a bad payload."""
        if frame.type != cls.TYPE:
            raise PayloadError(f"frame type {frame.type:#04x} is not {cls.TYPE.name}")
        return cls.from_payload(frame.payload)


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
        return writer.to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> Info:
        reader = PayloadReader(payload, "INFO")
        board, firmware, digest = reader.text(), reader.text(), reader.take(32)
        arena, size, dtype, length, channels, classes, rate = reader.unpack(cls._LAYOUT)
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
        return writer.raw(_array_bytes(self.samples)).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> SensorFrame:
        reader = PayloadReader(payload, "SENSOR_FRAME")
        timestamp, code, count, channels = reader.unpack("QBHB")
        samples = _read_array(reader, int(code), (int(count), int(channels)))  # type: ignore[call-overload]
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
        return writer.raw(_array_bytes(self.window)).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> InferRequest:
        reader = PayloadReader(payload, "INFER_REQUEST")
        code, length, channels = reader.unpack("BHH")
        window = _read_array(reader, int(code), (int(length), int(channels)))  # type: ignore[call-overload]
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
        return writer.raw(_array_bytes(self.scores)).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> InferResult:
        reader = PayloadReader(payload, "INFER_RESULT")
        predicted, latency, code, count = reader.unpack("HIBH")
        scores = _read_array(reader, int(code), (int(count),))  # type: ignore[call-overload]
        reader.done()
        return cls(int(predicted), scores, int(latency))  # type: ignore[call-overload]


@dataclass(frozen=True)
class ModelBegin(Message):
    """Start a model upload of `size` bytes whose SHA-256 must be `sha256` at commit."""

    TYPE: ClassVar[MessageType] = MessageType.MODEL_BEGIN
    size: int
    sha256: bytes

    def to_payload(self) -> bytes:
        return PayloadWriter().pack("I", self.size).raw(self.sha256).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> ModelBegin:
        reader = PayloadReader(payload, "MODEL_BEGIN")
        (size,) = reader.unpack("I")
        digest = reader.take(32)
        reader.done()
        return cls(int(size), digest)  # type: ignore[call-overload]


@dataclass(frozen=True)
class ModelChunk(Message):
    """Bytes of the model at `offset`; the ACK carries the next offset the device expects."""

    TYPE: ClassVar[MessageType] = MessageType.MODEL_CHUNK
    offset: int
    data: bytes

    def to_payload(self) -> bytes:
        return PayloadWriter().pack("I", self.offset).raw(self.data).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> ModelChunk:
        reader = PayloadReader(payload, "MODEL_CHUNK")
        (offset,) = reader.unpack("I")
        return cls(int(offset), reader.rest())  # type: ignore[call-overload]


@dataclass(frozen=True)
class ModelCommit(Message):
    """Check the staged model's hash and make it the running model only if it matches."""

    TYPE: ClassVar[MessageType] = MessageType.MODEL_COMMIT


@dataclass(frozen=True)
class HeadGet(Message):
    """Ask for the classifier head the device holds (answered with HEAD_SET)."""

    TYPE: ClassVar[MessageType] = MessageType.HEAD_GET


@dataclass(frozen=True)
class HeadSet(Message):
    """A classifier head: version and float32 tensors in `[kernel_0, bias_0, ...]` order."""

    TYPE: ClassVar[MessageType] = MessageType.HEAD_SET
    version: int
    tensors: tuple[np.ndarray, ...] = field(compare=False)

    def to_payload(self) -> bytes:
        writer = PayloadWriter().pack("IB", self.version, len(self.tensors))
        for tensor in self.tensors:
            array = np.asarray(tensor, dtype=np.float32)
            writer.pack("B" + "H" * array.ndim, array.ndim, *array.shape)
            writer.raw(_array_bytes(array))
        return writer.to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> HeadSet:
        reader = PayloadReader(payload, "HEAD_SET")
        version, count = reader.unpack("IB")
        tensors = []
        for _ in range(int(count)):  # type: ignore[call-overload]
            ndim = reader.u8()
            shape = tuple(int(d) for d in reader.unpack("H" * ndim))  # type: ignore[call-overload]
            tensors.append(_read_array(reader, DType.FLOAT32, shape))
        reader.done()
        return cls(int(version), tuple(tensors))  # type: ignore[call-overload]


MESSAGE_CLASSES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Info,
        Ack,
        Nack,
        ErrorReply,
        Log,
        Reset,
        StreamStart,
        StreamStop,
        SensorFrame,
        LabelEvent,
        LabelRequest,
        InferRequest,
        InferResult,
        ModelBegin,
        ModelChunk,
        ModelCommit,
        HeadGet,
        HeadSet,
    )
}


def message_from_frame(frame: Frame) -> Message:
    """The typed message in a frame; `PayloadError` for an unknown type or a bad payload."""
    try:
        cls = MESSAGE_CLASSES[frame.type]
    except KeyError:
        raise PayloadError(f"unknown message type {frame.type:#04x}") from None
    return cls.from_frame(frame)


def message_to_frame(message: Message, seq: int) -> Frame:
    """Same as `message.to_frame(seq)`, the symmetric partner of `message_from_frame`."""
    return message.to_frame(seq)
