"""Model upload (MODEL_BEGIN/CHUNK/COMMIT) and classifier head (HEAD_GET/HEAD_SET) messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from firmware_bridge.protocol.message_base import (
    DType,
    Message,
    MessageType,
    array_bytes,
    read_array,
)
from firmware_bridge.protocol.payload import PayloadReader, PayloadWriter


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
            writer.raw(array_bytes(array))
        return writer.to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> HeadSet:
        reader = PayloadReader(payload, "HEAD_SET")
        version, count = reader.unpack("IB")
        tensors = []
        for _ in range(int(count)):  # type: ignore[call-overload]
            ndim = reader.u8()
            shape = tuple(int(d) for d in reader.unpack("H" * ndim))  # type: ignore[call-overload]
            tensors.append(read_array(reader, DType.FLOAT32, shape))
        reader.done()
        return cls(int(version), tuple(tensors))  # type: ignore[call-overload]
