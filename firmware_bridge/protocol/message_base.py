"""Message type codes, array coding and the `Message` base class shared by every message."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np

from firmware_bridge.errors import PayloadError
from firmware_bridge.protocol.framing import Frame
from firmware_bridge.protocol.payload import PayloadReader


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
    EMBED_RESET = 0x50
    EMBED_PUSH = 0x51
    INFER_LABEL = 0x52
    TRAIN_ROUND = 0x53
    TRAIN_RESULT = 0x54
    DELTA_READ = 0x55
    DELTA_CHUNK = 0x56


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
        MessageType.TRAIN_RESULT,
        MessageType.DELTA_CHUNK,
    }
)


def dtype_code(array: np.ndarray) -> DType:
    """Wire code of an array's element type."""
    for code, numpy_type in _NUMPY_DTYPES.items():
        if array.dtype == numpy_type:
            return code
    raise PayloadError(f"arrays of {array.dtype} cannot travel; use int8, int16 or float32")


def array_bytes(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()


def read_array(reader: PayloadReader, code: int, shape: tuple[int, ...]) -> np.ndarray:
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
