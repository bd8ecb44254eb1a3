"""Typed messages carried in frames: one frozen dataclass per message type.

Each message has `to_frame(seq)` and `from_frame(frame)` (symmetric), built from
`to_payload()` / `from_payload()`. `message_from_frame` picks the class from the frame type.
Byte layouts are documented in docs/serial-protocol.md; all integers are little-endian.
"""

from __future__ import annotations

from firmware_bridge.errors import PayloadError
from firmware_bridge.protocol.control_messages import (
    Ack,
    ErrorReply,
    Hello,
    Info,
    Log,
    Nack,
    Reset,
)
from firmware_bridge.protocol.data_messages import (
    InferRequest,
    InferResult,
    LabelEvent,
    LabelRequest,
    SensorFrame,
    StreamStart,
    StreamStop,
)
from firmware_bridge.protocol.framing import Frame
from firmware_bridge.protocol.message_base import (
    REPLY_TYPES,
    DType,
    ErrorCode,
    Message,
    MessageType,
    NackReason,
    dtype_code,
)
from firmware_bridge.protocol.model_messages import (
    HeadGet,
    HeadSet,
    ModelBegin,
    ModelChunk,
    ModelCommit,
)
from firmware_bridge.protocol.training_messages import (
    DeltaChunk,
    DeltaForm,
    DeltaRead,
    EmbedPush,
    EmbedReset,
    InferLabel,
    TrainResult,
    TrainRound,
)

__all__ = [
    "MESSAGE_CLASSES",
    "REPLY_TYPES",
    "Ack",
    "DType",
    "DeltaChunk",
    "DeltaForm",
    "DeltaRead",
    "EmbedPush",
    "EmbedReset",
    "ErrorCode",
    "ErrorReply",
    "HeadGet",
    "HeadSet",
    "Hello",
    "InferLabel",
    "InferRequest",
    "InferResult",
    "Info",
    "LabelEvent",
    "LabelRequest",
    "Log",
    "Message",
    "MessageType",
    "ModelBegin",
    "ModelChunk",
    "ModelCommit",
    "Nack",
    "NackReason",
    "Reset",
    "SensorFrame",
    "StreamStart",
    "StreamStop",
    "TrainResult",
    "TrainRound",
    "dtype_code",
    "message_from_frame",
    "message_to_frame",
]

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
        EmbedReset,
        EmbedPush,
        InferLabel,
        TrainRound,
        TrainResult,
        DeltaRead,
        DeltaChunk,
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
