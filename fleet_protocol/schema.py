"""Field schemas of every message: dataclass <-> plain msgpack values, validated strictly.

The decoder never trusts a value's type: every field is checked against its kind here, and
exactly the declared fields must be present (no missing, no extra).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

from fleet_protocol.errors import CodecError, MalformedMessageError, NonFiniteValueError, TopicError
from fleet_protocol.messages import (
    DeviceStatus,
    FitConfig,
    GlobalModel,
    Message,
    ModelPatch,
    ModelUpdate,
    RoundAnnouncement,
)
from fleet_protocol.tensor_codecs import CODEC_DTYPES
from fleet_protocol.topics import validate_device_id, validate_fleet
from fleet_protocol.update_encoding import parse_update_encoding

MAX_TEXT_CHARS = 1024
MAX_METRICS = 64
MAX_INT = 2**63 - 1
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

TENSOR_FIELDS: dict[type, str] = {GlobalModel: "weights", ModelUpdate: "delta"}
"""The one field of each tensor-carrying message that holds `Weights`."""


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise MalformedMessageError(f"expected an integer in [0, 2**63), got {value!r}")
    return value


def _positive_int(value: Any) -> int:
    if _int(value) == 0:
        raise MalformedMessageError("expected an integer >= 1, got 0")
    return int(value)


def _sha256_hex(value: Any) -> str:
    if not isinstance(value, str) or _SHA256_HEX.fullmatch(value) is None:
        raise MalformedMessageError("model_sha256 must be 64 lowercase hex digits")
    return value


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes) or not value:
        raise MalformedMessageError("expected a non-empty byte string")
    return value


def _codec(value: Any) -> str:
    if not isinstance(value, str) or value not in CODEC_DTYPES:
        raise MalformedMessageError(f"unknown codec {value!r}")
    return str(value)


def _optional_encoding(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return parse_update_encoding(value).to_text()
    except CodecError as error:
        raise MalformedMessageError(str(error)) from None


def _optional_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else _float(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedMessageError(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise NonFiniteValueError(f"expected a finite number, got {value!r}")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise MalformedMessageError(f"expected a boolean, got {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
        raise MalformedMessageError(f"expected a string of at most {MAX_TEXT_CHARS} characters")
    return value


def _fleet(value: Any) -> str:
    try:
        return validate_fleet(value)
    except TopicError as error:
        raise MalformedMessageError(str(error)) from None


def _device(value: Any) -> str:
    try:
        return validate_device_id(value)
    except TopicError as error:
        raise MalformedMessageError(str(error)) from None


def _metrics(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or len(value) > MAX_METRICS:
        raise MalformedMessageError(f"metrics must be a map of at most {MAX_METRICS} entries")
    return {_text(key): _float(item) for key, item in value.items()}


def _fit_config(value: Any) -> FitConfig:
    return FitConfig(**_parse_fields(FitConfig, value))


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "fleet": _fleet,
    "device_id": _device,
    "round_id": _int,
    "model_version": _int,
    "base_version": _int,
    "sequence": _int,
    "num_examples": _positive_int,
    "quorum": _int,
    "local_epochs": _int,
    "batch_size": _int,
    "parent_version": _optional_int,
    "model_sha256": _sha256_hex,
    "base_sha256": _sha256_hex,
    "patch": _bytes,
    "codec": _codec,
    "optimizer": _text,
    "reason": _text,
    "detail": _text,
    "deadline_unix": _float,
    "learning_rate": _float,
    "proximal_mu": _float,
    "momentum": _float,
    "l2": _float,
    "accepted": _bool,
    "online": _bool,
    "metrics": _metrics,
    "config": _fit_config,
}
_OPTIONAL_INT_FIELDS = {(DeviceStatus, "model_version")}
OMITTED_WHEN_NONE: dict[type, dict[str, Callable[[Any], Any]]] = {
    RoundAnnouncement: {
        "max_staleness": _optional_int,
        "encoding": _optional_encoding,
        "sampling_rate": _optional_float,
        "sampling_seed": _optional_text,
    },
    DeviceStatus: {
        "free_disk_bytes": _optional_int,
        "cpu_temp_c": _optional_float,
        "store_bytes": _optional_int,
        "outbox_backlog": _optional_int,
    },
    GlobalModel: {"dp_epsilon": _optional_float, "dp_delta": _optional_float},
    ModelPatch: {"dp_epsilon": _optional_float, "dp_delta": _optional_float},
}
"""Fields added after a message's first version: absent on the wire means None (compatible)."""


@dataclass(frozen=True)
class _FieldPlan:
    """What a message class carries on the wire, worked out once per class (not per message)."""

    names: tuple[str, ...]  # every scalar field, in declaration order
    required: tuple[tuple[str, Callable[[Any], Any]], ...]  # with its parser
    optional: tuple[tuple[str, Callable[[Any], Any]], ...]  # absent on the wire means None
    required_set: frozenset[str]
    allowed_set: frozenset[str]


_PLANS: dict[type, _FieldPlan] = {}


def _plan(cls: type) -> _FieldPlan:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _make_plan(cls)
    return plan


def _make_plan(cls: type) -> _FieldPlan:
    tensor_field = TENSOR_FIELDS.get(cls)
    names = tuple(f.name for f in dataclass_fields(cls) if f.name != tensor_field)
    optional = OMITTED_WHEN_NONE.get(cls, {})
    required = tuple(
        (name, _optional_int if (cls, name) in _OPTIONAL_INT_FIELDS else _PARSERS[name])
        for name in names
        if name not in optional
    )
    required_set = frozenset(name for name, _ in required)
    return _FieldPlan(names, required, tuple(optional.items()), required_set,
                      required_set | frozenset(optional))  # fmt: skip


def _parse_fields(cls: type, raw: Any) -> dict[str, Any]:
    plan = _plan(cls)
    if not isinstance(raw, dict) or not plan.required_set <= raw.keys() <= plan.allowed_set:
        got = sorted(map(str, raw)) if isinstance(raw, dict) else type(raw).__name__
        raise MalformedMessageError(
            f"{cls.__name__} needs fields {sorted(plan.required_set)}, got {got}"
        )
    parsed = {name: parser(raw[name]) for name, parser in plan.required}
    for name, parser in plan.optional:
        parsed[name] = parser(raw.get(name))
    return parsed


def fields_from_wire(cls: type, raw: Any) -> dict[str, Any]:
    """Validate the scalar fields of a `cls` message and return them as constructor kwargs."""
    return _parse_fields(cls, raw)


def fields_to_wire(message: Message) -> dict[str, Any]:
    """The scalar fields of a message as msgpack-ready values (tensors excluded)."""
    cls = type(message)
    out: dict[str, Any] = {}
    optional = OMITTED_WHEN_NONE.get(cls, {})
    for name in _plan(cls).names:
        value = getattr(message, name)
        if name in optional and value is None:
            continue  # older receivers know no such field: leave it out
        if isinstance(value, FitConfig):
            value = {field: getattr(value, field) for field in _plan(FitConfig).names}
        elif isinstance(value, dict):
            value = {str(key): float(item) for key, item in value.items()}
        out[name] = value
    _parse_fields(cls, out)  # refuse to send what a receiver would refuse
    return out
