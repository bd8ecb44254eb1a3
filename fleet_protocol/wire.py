"""The versioned binary envelope every federated message travels in (msgpack, never pickle).

Layout (see docs/protocol.md):

    envelope = {"v": 1, "body": bin, "signer": str, "sig": bin,     # signer/sig optional
                "z": "zstd"}                        # only if the body is zstd-compressed
    body     = {"type": str, "fields": {...}, "tensors": [tensor, ...]}
    tensor   = {"dtype": "float32", "shape": [int, ...], "codec": str, "scale": float,
                "values": bin, "indices": bin,                       # indices only if sparse
                "index_coding": "varint" | "bitmap"}                 # absent: raw uint16/32

Decoding validates in a fixed order and raises exactly one `ProtocolError` subclass:
size, msgpack, version, signature, type, fields, tensor shapes, tensor sizes, finiteness.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import msgpack  # type: ignore[import-untyped]
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fleet_protocol.envelope_compression import ZSTD, compress_body, decompress_body
from fleet_protocol.errors import (
    MalformedMessageError,
    MessageTooLargeError,
    MessageTypeError,
    ProtocolVersionError,
    ShapeMismatchError,
    SignatureError,
    UnknownSignerError,
)
from fleet_protocol.messages import MESSAGE_TYPE_NAMES, Message
from fleet_protocol.schema import TENSOR_FIELDS, fields_from_wire, fields_to_wire
from fleet_protocol.signing import sign_body, verify_body
from fleet_protocol.sparse_indices import INDEX_CODINGS
from fleet_protocol.tensor_codecs import (
    CODEC_DTYPES,
    RAW_INDICES,
    EncodedTensor,
    Rounding,
    decode_dense,
    decode_tensor,
    encode_tensor,
)
from fleet_protocol.topics import AGGREGATOR_ID
from fleet_protocol.types import Weights

PROTOCOL_VERSION = 1
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_TENSORS = 256
MAX_NDIM = 8
CODECS = tuple(CODEC_DTYPES)

_TYPES_BY_NAME = {name: cls for cls, name in MESSAGE_TYPE_NAMES.items()}
_ENVELOPE_KEYS = {"v", "body", "signer", "sig", "z"}
_TENSOR_KEYS = {"dtype", "shape", "codec", "scale", "values"}
_SPARSE_KEYS = {"indices", "index_coding"}

VerifyKey = Callable[[str], Ed25519PublicKey | None]


def signer_of(message: Message) -> str:
    """Who must sign a message: the device for its updates and status, else the aggregator."""
    device_id = getattr(message, "device_id", None)
    sent_by_device = type(message).__name__ in ("ModelUpdate", "DeviceStatus")
    return str(device_id) if sent_by_device else AGGREGATOR_ID


def encode_message(
    message: Message,
    *,
    codec: str = "float32",
    signing_key: Ed25519PrivateKey | None = None,
    rng: Rounding | None = None,
    compact: bool = False,
    zstd: bool = False,
    encoded: Sequence[EncodedTensor] | None = None,
) -> bytes:
    """Encode (and sign, given a key) a message; tensors use `codec` (int8 rounds via `rng`).

    `compact` codes sparse indices as varints or a bitmap; `zstd` compresses the body when
    that makes it smaller. Both only for receivers that read them (`update_encoding`).
    `encoded` carries tensors coded elsewhere as they are (a microcontroller's int8 delta,
    relayed by its host) in place of coding the message's own.
    """
    name = MESSAGE_TYPE_NAMES.get(type(message))
    if name is None:
        raise MessageTypeError(f"not a federation message: {type(message).__name__}")
    tensor_field = TENSOR_FIELDS.get(type(message))
    weights = getattr(message, tensor_field) if tensor_field else []
    coded = (
        encoded
        if encoded is not None
        else [encode_tensor(t, codec, rng, compact_indices=compact) for t in weights]
    )
    tensors = [_tensor_to_wire(t) for t in coded]
    body = msgpack.packb(
        {"type": name, "fields": fields_to_wire(message), "tensors": tensors}, use_bin_type=True
    )
    envelope: dict[str, Any] = {"v": PROTOCOL_VERSION, "body": body}
    compressed = compress_body(body) if zstd else None
    if compressed is not None:  # the signature covers the bytes that travel
        body = envelope["body"] = compressed
        envelope["z"] = ZSTD
    if signing_key is not None:
        signer = signer_of(message)
        envelope["signer"] = signer
        envelope["sig"] = sign_body(signing_key, PROTOCOL_VERSION, signer, body)
    return bytes(msgpack.packb(envelope, use_bin_type=True))


def _tensor_to_wire(encoded: EncodedTensor) -> dict[str, Any]:
    out: dict[str, Any] = {
        "dtype": "float32",
        "shape": list(encoded.shape),
        "codec": encoded.codec,
        "scale": encoded.scale,
        "values": encoded.values,
    }
    if encoded.indices is not None:
        out["indices"] = encoded.indices
    if encoded.index_coding != RAW_INDICES:
        out["index_coding"] = encoded.index_coding
    return out


def decode_message(
    data: bytes,
    *,
    expected_type: type | None = None,
    expected_shapes: list[tuple[int, ...]] | None = None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    verify_key: VerifyKey | None = None,
) -> Message:
    """Decode and validate an envelope; `verify_key(signer)` makes the signature mandatory."""
    signer, content = open_envelope(data, max_bytes=max_bytes, verify_key=verify_key)
    message = _message_from_body(content, expected_type, expected_shapes, max_bytes)
    if verify_key is not None and signer != signer_of(message):
        raise SignatureError(
            f"{type(message).__name__} signed by {signer!r}, expected {signer_of(message)!r}"
        )
    return message


def seal_envelope(body: bytes, signer: str | None, signing_key: Ed25519PrivateKey | None) -> bytes:
    """Wrap an already packed body in the versioned envelope (signed as `signer`, given a key).

    For messages outside `Message` that still travel in the one envelope (a partial sum).
    """
    envelope: dict[str, Any] = {"v": PROTOCOL_VERSION, "body": body}
    if signing_key is not None and signer is not None:
        envelope["signer"] = signer
        envelope["sig"] = sign_body(signing_key, PROTOCOL_VERSION, signer, body)
    return bytes(msgpack.packb(envelope, use_bin_type=True))


def open_envelope(
    data: bytes, *, max_bytes: int, verify_key: VerifyKey | None
) -> tuple[str | None, dict[str, Any]]:
    """Check size, envelope and (given `verify_key`) signature, undo compression; return
    (signer, unpacked body). `decode_message` and the partial sum's decoder share it."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedMessageError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise MessageTooLargeError(f"message of {len(data)} bytes exceeds {max_bytes}")
    envelope = _unpack_map(bytes(data), "envelope")
    body = _check_envelope(envelope)
    if verify_key is not None:
        _verify_signature(envelope, body, verify_key)
    if "z" in envelope:
        if envelope["z"] != ZSTD:
            raise MalformedMessageError(f"unknown body compression {envelope['z']!r}")
        body = decompress_body(body, max_bytes)
    signer = envelope.get("signer")
    return (signer if isinstance(signer, str) else None), _unpack_map(body, "body")


def _reject_ext(code: int, data: bytes) -> Any:
    raise MalformedMessageError(f"msgpack extension type {code} is not allowed")


def _unpack_map(data: bytes, what: str) -> dict[str, Any]:
    if not data:
        raise MalformedMessageError(f"empty {what}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            ext_hook=_reject_ext,
            max_str_len=len(data),
            max_bin_len=len(data),
            max_array_len=len(data),
            max_map_len=len(data) // 2,
            max_ext_len=len(data),
        )
    except MalformedMessageError:
        raise
    except Exception as error:  # msgpack raises a zoo of ValueError/TypeError subclasses
        raise MalformedMessageError(f"{what} is not valid msgpack: {error}") from None
    if not isinstance(value, dict):
        raise MalformedMessageError(f"{what} must be a msgpack map, got {type(value).__name__}")
    return value


def _check_envelope(envelope: dict[str, Any]) -> bytes:
    version = envelope.get("v")
    if isinstance(version, bool) or not isinstance(version, int):
        raise MalformedMessageError("envelope has no integer protocol version 'v'")
    if version != PROTOCOL_VERSION:
        raise ProtocolVersionError(f"protocol version {version}, expected {PROTOCOL_VERSION}")
    if not set(envelope) <= _ENVELOPE_KEYS or ("signer" in envelope) != ("sig" in envelope):
        raise MalformedMessageError(f"envelope keys must be {sorted(_ENVELOPE_KEYS)}")
    body = envelope.get("body")
    if not isinstance(body, bytes):
        raise MalformedMessageError("envelope 'body' must be bytes")
    return body


def _verify_signature(envelope: dict[str, Any], body: bytes, verify_key: VerifyKey) -> None:
    signer, signature = envelope.get("signer"), envelope.get("sig")
    if not isinstance(signer, str) or not isinstance(signature, bytes):
        raise SignatureError("message is not signed")
    public_key = verify_key(signer)
    if public_key is None:
        raise UnknownSignerError(f"no trusted key for signer {signer!r}")
    verify_body(public_key, PROTOCOL_VERSION, signer, body, signature)


def _message_from_body(
    content: dict[str, Any],
    expected_type: type | None,
    expected_shapes: list[tuple[int, ...]] | None,
    max_bytes: int,
) -> Message:
    if set(content) != {"type", "fields", "tensors"}:
        raise MalformedMessageError("body must hold exactly 'type', 'fields', 'tensors'")
    cls = _TYPES_BY_NAME.get(content["type"]) if isinstance(content["type"], str) else None
    if cls is None:
        raise MessageTypeError(f"unknown message type {content['type']!r}")
    if expected_type is not None and cls is not expected_type:
        raise MessageTypeError(f"expected {expected_type.__name__}, got {cls.__name__}")
    kwargs = fields_from_wire(cls, content["fields"])
    tensor_field = TENSOR_FIELDS.get(cls)
    shapes = expected_shapes if tensor_field else None
    tensors = _tensors_from_wire(content["tensors"], shapes, max_bytes)
    if tensor_field:
        kwargs[tensor_field] = tensors
    elif tensors:
        raise MalformedMessageError(f"{cls.__name__} carries no tensors")
    message: Message = cls(**kwargs)
    return message


def _tensors_from_wire(
    raw: Any, expected_shapes: list[tuple[int, ...]] | None, max_bytes: int
) -> Weights:
    if not isinstance(raw, list) or len(raw) > MAX_TENSORS:
        raise MalformedMessageError(f"'tensors' must be a list of at most {MAX_TENSORS}")
    if expected_shapes is not None:
        dense = _expected_dense_tensors(raw, expected_shapes)
        if dense is not None:
            return dense
    encoded = [_encoded_tensor(item) for item in raw]
    shapes = [t.shape for t in encoded]
    if expected_shapes is not None:
        expected = [tuple(int(d) for d in shape) for shape in expected_shapes]
        if shapes != expected:
            raise ShapeMismatchError(f"tensor shapes {shapes} differ from the model's {expected}")
    total = sum(t.num_elements for t in encoded)
    if expected_shapes is None and total > max_bytes:
        raise MessageTooLargeError(f"tensors declare {total} elements, more than {max_bytes}")
    return [decode_tensor(t) for t in encoded]


def _expected_dense_tensors(raw: list[Any], shapes: list[tuple[int, ...]]) -> Weights | None:
    """The common case in one tight pass: dense tensors of exactly the expected shapes.

    None for anything else (sparse, other keys or shapes, odd types), which then takes the full
    path below and its errors; what this accepts, that path accepts too, with the same values.
    """
    if len(raw) != len(shapes):
        return None
    tensors = []
    for item, shape in zip(raw, shapes, strict=True):
        if not _is_dense_of_shape(item, shape):
            return None
        tensors.append(decode_dense(item["codec"], shape, float(item["scale"]), item["values"]))
    return tensors


def _is_dense_of_shape(item: Any, shape: tuple[int, ...]) -> bool:
    if type(item) is not dict or item.keys() != _TENSOR_KEYS or len(shape) > MAX_NDIM:
        return False
    dims, codec, scale = item["shape"], item["codec"], item["scale"]
    return (
        item["dtype"] == "float32" and type(codec) is str and codec in CODEC_DTYPES
        and type(item["values"]) is bytes and type(scale) in (int, float)
        and type(dims) is list and len(dims) == len(shape)
        and all(type(d) is int and d == e for d, e in zip(dims, shape, strict=True))
    )  # fmt: skip


def _encoded_tensor(raw: Any) -> EncodedTensor:
    if not isinstance(raw, dict) or not _TENSOR_KEYS <= set(raw) <= _TENSOR_KEYS | _SPARSE_KEYS:
        raise MalformedMessageError(
            f"a tensor needs keys {sorted(_TENSOR_KEYS)} (+ 'indices', 'index_coding')"
        )
    shape = raw["shape"]
    codec = raw["codec"] if isinstance(raw["codec"], str) else None
    if raw["dtype"] != "float32" or codec not in CODEC_DTYPES:
        raise MalformedMessageError(f"unsupported tensor {raw['dtype']!r}/{raw['codec']!r}")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(_is_dim(d) for d in shape):
        raise MalformedMessageError(f"invalid tensor shape {shape!r}")
    scale, values, indices = raw["scale"], raw["values"], raw.get("indices")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise MalformedMessageError("tensor 'scale' must be a number")
    if not isinstance(values, bytes) or not isinstance(indices, (bytes, type(None))):
        raise MalformedMessageError("tensor 'values' and 'indices' must be bytes")
    coding = raw.get("index_coding", RAW_INDICES)
    if "index_coding" in raw and (coding not in INDEX_CODINGS or indices is None):
        raise MalformedMessageError(f"invalid index coding {coding!r} (needs 'indices')")
    return EncodedTensor(str(codec), tuple(shape), float(scale), values, indices, coding)


def _is_dim(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


def message_sha256(weights: Weights) -> str:
    """Hex SHA-256 of a model's float32 tensors and shapes (what `RoundAnnouncement` names)."""
    digest = hashlib.sha256(b"iomt-weights-v1")
    digest.update(len(weights).to_bytes(4, "little"))
    for tensor in weights:
        array = np.ascontiguousarray(tensor, dtype="<f4")
        digest.update(array.ndim.to_bytes(4, "little"))
        for dim in array.shape:
            digest.update(int(dim).to_bytes(8, "little"))
        digest.update(array.tobytes())
    return digest.hexdigest()
