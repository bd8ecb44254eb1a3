"""Exceptions of the federation package.

Every error carries a short `reason` code so a service can count rejections by reason
without parsing messages (`rejected_by_reason["signature"] += 1`).
"""

from __future__ import annotations


class FederationError(Exception):
    """Base of every error raised by `federation`."""

    reason = "error"


class ProtocolError(FederationError):
    """Bytes on the wire that cannot be accepted."""

    reason = "protocol"


class ProtocolVersionError(ProtocolError):
    """The envelope speaks a protocol version this code does not."""

    reason = "version"


class MalformedMessageError(ProtocolError):
    """The bytes are not a well-formed envelope (msgpack, schema, sizes)."""

    reason = "malformed"


class SparseIndexError(MalformedMessageError):
    """Sparse indices that are truncated, duplicated, out of range or not increasing."""

    reason = "sparse_index"


class MessageTypeError(ProtocolError):
    """Unknown message type, or not the type the caller expected."""

    reason = "type"


class ShapeMismatchError(ProtocolError):
    """Tensor shapes differ from the announced model."""

    reason = "shape"


class NonFiniteValueError(ProtocolError):
    """A tensor or scalar holds NaN or infinity."""

    reason = "non_finite"


class SignatureError(ProtocolError):
    """The signature is missing, malformed or does not verify."""

    reason = "signature"


class UnknownSignerError(SignatureError):
    """No trusted public key for the signer (unknown or revoked device)."""

    reason = "unknown_signer"


class MessageTooLargeError(ProtocolError):
    """The message (or a reassembled chunked message) exceeds the size limit."""

    reason = "too_large"


class ChunkError(ProtocolError):
    """A chunk is malformed or inconsistent with earlier chunks of its message."""

    reason = "chunk"


class TopicError(FederationError):
    """An MQTT topic or an id used in one is invalid."""

    reason = "topic"


class CodecError(FederationError):
    """A tensor cannot be encoded with the requested codec."""

    reason = "codec"


class AggregationError(FederationError):
    """Updates cannot be aggregated (wrong shapes, bad sample counts, ...)."""

    reason = "aggregation"


class NoUpdatesError(AggregationError):
    """A round was closed with no accepted updates."""

    reason = "no_updates"


class DuplicateUpdateError(AggregationError):
    """The same device contributed twice to one round."""

    reason = "duplicate"


class StrategyConfigError(FederationError):
    """Unknown strategy name or invalid strategy options."""

    reason = "config"
