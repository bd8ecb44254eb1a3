"""Training messages (docs/serial-protocol.md section 7): the MCU fine-tunes the head itself.

The host fills the device's embedding ring (EMBED_RESET + EMBED_PUSH, or INFER_LABEL after an
INFER_REQUEST to keep the device's own embedding), sends the round's global head with HEAD_SET,
then TRAIN_ROUND (answered by TRAIN_RESULT once trained) and reads the delta with DELTA_READ
(answered by DELTA_CHUNKs). TRAIN_ROUND carries `TRAINING_VERSION`; INFO announces it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from firmware_bridge.errors import PayloadError
from firmware_bridge.protocol.message_base import Message, MessageType
from firmware_bridge.protocol.payload import PayloadReader, PayloadWriter

TRAINING_VERSION = 1


class DeltaForm(enum.IntEnum):
    """What DELTA_READ reads: the int8 records sent to the fleet, or the float32 delta."""

    INT8_RECORDS = 0
    FLOAT32 = 1


@dataclass(frozen=True)
class EmbedReset(Message):
    """Empty the ring for int8 embeddings of `width` values (real = scale * (q - zero_point))."""

    TYPE: ClassVar[MessageType] = MessageType.EMBED_RESET
    width: int
    scale: float
    zero_point: int

    def to_payload(self) -> bytes:
        return PayloadWriter().pack("Hfi", self.width, self.scale, self.zero_point).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> EmbedReset:
        reader = PayloadReader(payload, "EMBED_RESET")
        width, scale, zero_point = reader.unpack("Hfi")
        reader.done()
        return cls(int(width), float(scale), int(zero_point))  # type: ignore[call-overload, arg-type]


@dataclass(frozen=True)
class EmbedPush(Message):
    """Labelled int8 embeddings for the ring: `embeddings` (count, width), `labels` (count)."""

    TYPE: ClassVar[MessageType] = MessageType.EMBED_PUSH
    embeddings: np.ndarray = field(compare=False)
    labels: np.ndarray = field(compare=False)

    def to_payload(self) -> bytes:
        rows = np.asarray(self.embeddings, np.int8)
        labels = np.asarray(self.labels)
        if rows.ndim != 2 or labels.shape != (len(rows),) or labels.min(initial=0) < 0:
            raise PayloadError("EMBED_PUSH needs (count, width) int8 rows and count labels >= 0")
        if labels.max(initial=0) > 255:
            raise PayloadError("EMBED_PUSH labels must be below 256")
        packed = np.concatenate([labels.astype(np.uint8)[:, None], rows.view(np.uint8)], axis=1)
        return PayloadWriter().pack("H", len(rows)).raw(packed.tobytes()).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> EmbedPush:
        reader = PayloadReader(payload, "EMBED_PUSH")
        (count,) = reader.unpack("H")
        rest = np.frombuffer(reader.rest(), np.uint8)
        rows_count = int(count)  # type: ignore[call-overload]
        if rows_count == 0 or rest.size % rows_count or rest.size < 2 * rows_count:
            raise PayloadError("EMBED_PUSH: rows of a label and an embedding do not fill it")
        rows = rest.reshape(rows_count, -1)
        return cls(rows[:, 1:].view(np.int8).copy(), rows[:, 0].astype(np.int64))


@dataclass(frozen=True)
class InferLabel(Message):
    """Keep the embedding of the last INFER_REQUEST's window in the ring with this label."""

    TYPE: ClassVar[MessageType] = MessageType.INFER_LABEL
    label: int

    def to_payload(self) -> bytes:
        return PayloadWriter().pack("B", self.label).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> InferLabel:
        reader = PayloadReader(payload, "INFER_LABEL")
        label = reader.u8()
        reader.done()
        return cls(label)


@dataclass(frozen=True)
class TrainRound(Message):
    """Train the held head (it must be version `head_version`) on the ring for a round."""

    TYPE: ClassVar[MessageType] = MessageType.TRAIN_ROUND
    round_id: int
    head_version: int
    epochs: int
    batch_size: int
    learning_rate: float
    momentum: float
    l2: float
    proximal_mu: float
    seed: int
    stochastic_rounding: bool = True
    version: int = TRAINING_VERSION

    _LAYOUT: ClassVar[str] = "BIIHHffffQB"

    def to_payload(self) -> bytes:
        return PayloadWriter().pack(
            self._LAYOUT, self.version, self.round_id, self.head_version, self.epochs,
            self.batch_size, self.learning_rate, self.momentum, self.l2, self.proximal_mu,
            self.seed % 2**64, int(self.stochastic_rounding),
        ).to_bytes()  # fmt: skip

    @classmethod
    def from_payload(cls, payload: bytes) -> TrainRound:
        reader = PayloadReader(payload, "TRAIN_ROUND")
        values = reader.unpack(cls._LAYOUT)
        reader.done()
        v, round_id, head, epochs, batch, lr, momentum, l2, mu, seed, stochastic = values
        return cls(
            int(round_id), int(head), int(epochs), int(batch), float(lr), float(momentum),  # type: ignore[call-overload, arg-type]
            float(l2), float(mu), int(seed), bool(stochastic), int(v),  # type: ignore[call-overload, arg-type]
        )  # fmt: skip


@dataclass(frozen=True)
class TrainResult(Message):
    """The round is trained: examples, last epoch's loss, head parameters, int8 delta bytes."""

    TYPE: ClassVar[MessageType] = MessageType.TRAIN_RESULT
    round_id: int
    num_examples: int
    loss: float
    params: int
    records_bytes: int

    def to_payload(self) -> bytes:
        return PayloadWriter().pack("IIfII", self.round_id, self.num_examples, self.loss,
                                    self.params, self.records_bytes).to_bytes()  # fmt: skip

    @classmethod
    def from_payload(cls, payload: bytes) -> TrainResult:
        reader = PayloadReader(payload, "TRAIN_RESULT")
        round_id, examples, loss, params, size = reader.unpack("IIfII")
        reader.done()
        return cls(int(round_id), int(examples), float(loss), int(params), int(size))  # type: ignore[call-overload, arg-type]


@dataclass(frozen=True)
class DeltaRead(Message):
    """Read `length` bytes at `offset` of a round's delta (the device sends what it has)."""

    TYPE: ClassVar[MessageType] = MessageType.DELTA_READ
    round_id: int
    form: DeltaForm
    offset: int
    length: int

    def to_payload(self) -> bytes:
        writer = PayloadWriter()
        return writer.pack("IBIH", self.round_id, self.form, self.offset, self.length).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> DeltaRead:
        reader = PayloadReader(payload, "DELTA_READ")
        round_id, form, offset, length = reader.unpack("IBIH")
        reader.done()
        try:
            delta_form = DeltaForm(form)  # type: ignore[arg-type]
        except ValueError:
            raise PayloadError(f"DELTA_READ: unknown delta form {form}") from None
        return cls(int(round_id), delta_form, int(offset), int(length))  # type: ignore[call-overload]


@dataclass(frozen=True)
class DeltaChunk(Message):
    """Bytes of a delta starting at `offset`."""

    TYPE: ClassVar[MessageType] = MessageType.DELTA_CHUNK
    offset: int
    data: bytes

    def to_payload(self) -> bytes:
        return PayloadWriter().pack("I", self.offset).raw(self.data).to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> DeltaChunk:
        reader = PayloadReader(payload, "DELTA_CHUNK")
        (offset,) = reader.unpack("I")
        return cls(int(offset), reader.rest())  # type: ignore[call-overload]
