"""A message on a fleet topic as one readable line, for `iomt mqtt sub` and log reading.

Pure: topic and payload in, text out. Tensors show as shapes and the signature as its signer;
anything that is not one of our messages (a chunk, a secure-aggregation phase, junk) shows as
its size, never as raw bytes on a terminal.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from fleet_protocol.chunking import is_chunk
from fleet_protocol.errors import FederationError
from fleet_protocol.messages import MESSAGE_TYPE_NAMES, FitConfig, Message
from fleet_protocol.schema import TENSOR_FIELDS
from fleet_protocol.wire import decode_message


def message_to_text(topic: str, payload: bytes) -> str:
    """`topic type field=value ...` (tensors as shapes), or `topic <N bytes: why>`."""
    if not payload:
        return f"{topic} <empty: retained message cleared>"
    if is_chunk(payload):
        return f"{topic} <chunk of a large message, {len(payload)} bytes>"
    try:
        message = decode_message(payload)
    except FederationError as exc:
        return f"{topic} <{len(payload)} bytes, not a fleet message: {exc.reason}>"
    return f"{topic} {MESSAGE_TYPE_NAMES[type(message)]} {_fields_text(message)}"


def _fields_text(message: Message) -> str:
    tensor_field = TENSOR_FIELDS.get(type(message))
    parts = []
    for field in fields(message):
        value: Any = getattr(message, field.name)
        if field.name == tensor_field:
            value = "[" + ", ".join("x".join(map(str, w.shape)) for w in value) + "]"
        elif isinstance(value, FitConfig):
            value = f"{value.optimizer}/lr={value.learning_rate:g}/epochs={value.local_epochs}"
        elif value is None or value == "" or value == {}:
            continue
        elif isinstance(value, float):
            value = f"{value:.6g}"
        parts.append(f"{field.name}={value}")
    return " ".join(parts)
