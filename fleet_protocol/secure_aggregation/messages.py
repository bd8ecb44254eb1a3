"""What travels in each secure aggregation phase (frozen dataclasses; routed by the aggregator)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fleet_protocol.secure_aggregation.fixed_point import FixedPoint, Vector


@dataclass(frozen=True)
class SecAggConfig:
    """Per round: Shamir threshold, vector length, the round's context bytes, number format."""

    threshold: int
    vector_length: int
    context: bytes  # e.g. b"fleet/round" so keys and masks never repeat across rounds
    fixed_point: FixedPoint = field(default_factory=FixedPoint)
    example_unit: float = 100.0  # weights travel as num_examples / example_unit


@dataclass(frozen=True)
class KeyAdvertisement:
    """Phase 1, device -> all: public keys for share encryption and for masking."""

    device_id: str
    cipher_public: bytes
    mask_public: bytes


@dataclass(frozen=True)
class EncryptedShare:
    """Phase 2, device -> one other device via the aggregator: its shares, AES-GCM sealed."""

    sender: str
    receiver: str
    ciphertext: bytes


@dataclass(frozen=True, eq=False)
class MaskedInput:
    """Phase 3, device -> aggregator: the masked fixed-point vector (uniform on [0, 2^32))."""

    device_id: str
    values: Vector


@dataclass(frozen=True)
class UnmaskRequest:
    """Phase 4, aggregator -> survivors: whose input arrived and who dropped."""

    survivors: tuple[str, ...]
    dropped: tuple[str, ...]


@dataclass(frozen=True)
class UnmaskResponse:
    """Phase 4, survivor -> aggregator: self-mask shares of survivors, key shares of dropped."""

    device_id: str
    self_mask_shares: dict[str, bytes]
    mask_key_shares: dict[str, bytes]
