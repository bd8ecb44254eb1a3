"""A signed partial sum of a round: what an aggregator worker or a site aggregator sends upstream.

One partial sum stands for many device updates already validated, stored and acknowledged by
its signer: the float64 sum of `num_examples * delta` over them, the total weight (examples) and
who took part. Adding the partial sums of disjoint participant sets gives exactly the numerator
and the denominator of the FedAvg mean a single aggregator would compute, so the coordinator's
head equals a single aggregator's (up to float64 rounding). A signer re-sends its partial sum as
it grows (retained, so a restarted coordinator gets the latest back from the broker); `sequence`
orders them and must increase with every new partial sum of a signer in a round.

It travels in the same versioned envelope as every message (`fleet_protocol.wire`), under its own
body type, because its tensor is float64 and flat (the tensor codecs carry float32 tensors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet_protocol.errors import (
    MalformedMessageError,
    MessageTypeError,
    NonFiniteValueError,
    ShapeMismatchError,
    SignatureError,
    TopicError,
)
from fleet_protocol.topics import validate_device_id, validate_device_ids, validate_fleet
from fleet_protocol.wire import DEFAULT_MAX_MESSAGE_BYTES, VerifyKey, open_envelope, seal_envelope

BODY_TYPE = "partial_sum"
MAX_PARTICIPANTS = 1_000_000
_FIELDS = {"fleet", "round_id", "model_version", "signer_id", "sequence", "total_weight",
           "participants", "shapes"}  # fmt: skip
_BODY_KEYS = {"type", "fields", "sum"}


@dataclass(frozen=True, eq=False)
class PartialSum:
    """Signer -> coordinator (retained on `partial/{signer_id}`): a round's sum over its devices."""

    fleet: str
    round_id: int
    model_version: int
    signer_id: str
    sequence: int
    weighted_sum: np.ndarray  # (model_size,) float64: sum of num_examples * delta, flattened
    total_weight: int  # sum of num_examples
    participants: tuple[str, ...]  # sorted device ids
    shapes: tuple[tuple[int, ...], ...]  # the model's tensor shapes, to unflatten the sum

    @property
    def count(self) -> int:
        """How many device updates the sum holds."""
        return len(self.participants)


def encode_partial_sum(partial: PartialSum, signing_key: Ed25519PrivateKey | None) -> bytes:
    """Pack (and sign as `partial.signer_id`, given a key) a partial sum."""
    _check(partial)
    fields: dict[str, Any] = {
        "fleet": partial.fleet,
        "round_id": partial.round_id,
        "model_version": partial.model_version,
        "signer_id": partial.signer_id,
        "sequence": partial.sequence,
        "total_weight": partial.total_weight,
        "participants": list(partial.participants),
        "shapes": [list(shape) for shape in partial.shapes],
    }
    values = np.ascontiguousarray(partial.weighted_sum, dtype="<f8").tobytes()
    body = msgpack.packb({"type": BODY_TYPE, "fields": fields, "sum": values}, use_bin_type=True)
    return seal_envelope(body, partial.signer_id, signing_key)


def decode_partial_sum(
    data: bytes,
    *,
    verify_key: VerifyKey | None,
    expected_shapes: list[tuple[int, ...]] | None = None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> PartialSum:
    """Decode and validate; `verify_key(signer)` makes a signature by `signer_id` mandatory."""
    signer, content = open_envelope(data, max_bytes=max_bytes, verify_key=verify_key)
    if set(content) != _BODY_KEYS or content["type"] != BODY_TYPE:
        raise MessageTypeError(f"expected a {BODY_TYPE} body, got {content.get('type')!r}")
    partial = _from_fields(content["fields"], content["sum"])
    if verify_key is not None and signer != partial.signer_id:
        raise SignatureError(f"partial sum of {partial.signer_id!r} signed by {signer!r}")
    if expected_shapes is not None and list(partial.shapes) != [tuple(s) for s in expected_shapes]:
        raise ShapeMismatchError(f"partial sum shapes {list(partial.shapes)} differ from"
                                 f" the model's {expected_shapes}")  # fmt: skip
    return partial


def _from_fields(raw: Any, values: Any) -> PartialSum:
    if not isinstance(raw, dict) or set(raw) != _FIELDS:
        raise MalformedMessageError(f"a partial sum needs fields {sorted(_FIELDS)}")
    if not isinstance(values, bytes) or len(values) % 8:
        raise MalformedMessageError("partial sum 'sum' must be float64 bytes")
    participants = raw["participants"]
    if not isinstance(participants, list) or len(participants) > MAX_PARTICIPANTS:
        raise MalformedMessageError("'participants' must be a list of device ids")
    partial = PartialSum(
        fleet=_text(raw["fleet"]),
        round_id=_int(raw["round_id"]),
        model_version=_int(raw["model_version"]),
        signer_id=_text(raw["signer_id"]),
        sequence=_int(raw["sequence"]),
        weighted_sum=np.frombuffer(values, dtype="<f8"),
        total_weight=_int(raw["total_weight"]),
        participants=_texts(participants),
        shapes=_shapes(raw["shapes"]),
    )
    _check(partial)
    return partial


def _check(partial: PartialSum) -> None:
    """The invariants a receiver relies on; a sender checks them too (never send a refusal)."""
    _id(partial.fleet, validate_fleet)
    _id(partial.signer_id, validate_device_id)
    try:
        validate_device_ids(partial.participants)
    except TopicError as error:
        raise MalformedMessageError(str(error)) from None
    size = sum(math.prod(shape) for shape in partial.shapes)
    if partial.weighted_sum.ndim != 1 or partial.weighted_sum.size != size:
        raise ShapeMismatchError(f"partial sum of {partial.weighted_sum.size} values, shapes"
                                 f" {list(partial.shapes)} hold {size}")  # fmt: skip
    if len(set(partial.participants)) != len(partial.participants):
        raise MalformedMessageError("a device appears twice in a partial sum's participants")
    if list(partial.participants) != sorted(partial.participants):
        raise MalformedMessageError("partial sum participants must be sorted")
    if (partial.total_weight == 0) != (not partial.participants):
        raise MalformedMessageError("total_weight is 0 exactly when there are no participants")
    with np.errstate(over="ignore", invalid="ignore"):
        if not math.isfinite(float(np.sum(partial.weighted_sum))):
            raise NonFiniteValueError("partial sum holds NaN or infinity")


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise MalformedMessageError(f"expected an integer in [0, 2**63), got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise MalformedMessageError(f"expected an id string, got {type(value).__name__}")
    return value


def _texts(values: list[Any]) -> tuple[str, ...]:
    if not all(type(value) is str for value in values):
        raise MalformedMessageError("expected id strings in 'participants'")
    return tuple(values)


def _id(value: Any, validate: Any) -> str:
    try:
        return str(validate(value))
    except TopicError as error:
        raise MalformedMessageError(str(error)) from None


def _shapes(raw: Any) -> tuple[tuple[int, ...], ...]:
    if not isinstance(raw, list) or len(raw) > 256:
        raise MalformedMessageError("'shapes' must be a list of at most 256 shapes")
    shapes = []
    for shape in raw:
        if not isinstance(shape, list) or len(shape) > 8:
            raise MalformedMessageError(f"invalid tensor shape {shape!r}")
        shapes.append(tuple(_int(d) for d in shape))
    return tuple(shapes)
