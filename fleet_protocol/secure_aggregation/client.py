"""A device's side of secure aggregation: keys, shares, masked input, unmask response (pure)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fleet_protocol.secure_aggregation import masking
from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.secure_aggregation.fixed_point import Vector, add_mod, flatten, sub_mod
from fleet_protocol.secure_aggregation.messages import (
    EncryptedShare,
    KeyAdvertisement,
    MaskedInput,
    SecAggConfig,
    UnmaskRequest,
    UnmaskResponse,
)
from fleet_protocol.secure_aggregation.shamir import Share, split_secret
from fleet_protocol.types import Weights

_SHARE_BYTES = 68


def encode_weighted_update(delta: Weights, num_examples: int, config: SecAggConfig) -> Vector:
    """[w * delta..., w] in fixed point, w = num_examples / example_unit (sum -> mean)."""
    weight = num_examples / config.example_unit
    vector = np.concatenate([flatten(delta) * weight, [weight]])
    return config.fixed_point.encode(vector)


def share_associated_data(sender: str, receiver: str, context: bytes) -> bytes:
    """Binds a sealed share to who sent it, to whom, and the round."""
    return f"{sender}\x00{receiver}\x00".encode() + context


@dataclass(frozen=True)
class _HeldShares:
    """What another device entrusted to us: its self-mask share and its mask-key share."""

    self_mask: bytes
    mask_key: bytes


class SecAggClient:
    """One device in one round; call the phase methods in order."""

    def __init__(self, device_id: str, config: SecAggConfig) -> None:
        self.device_id, self.config = device_id, config
        self._cipher_key = masking.new_private_key()
        self._mask_key = masking.new_private_key()
        self._self_mask_seed = masking.new_seed()
        self._peers: dict[str, KeyAdvertisement] = {}
        self._held: dict[str, _HeldShares] = {}
        self._masked_with: tuple[str, ...] = ()

    def advertise(self) -> KeyAdvertisement:
        """Phase 1: our two public keys."""
        return KeyAdvertisement(
            self.device_id,
            masking.public_bytes(self._cipher_key),
            masking.public_bytes(self._mask_key),
        )

    def share_keys(self, advertisements: list[KeyAdvertisement]) -> list[EncryptedShare]:
        """Phase 2: seal a share of our self-mask seed and mask key for every advertised device."""
        self._peers = {a.device_id: a for a in advertisements}
        order = sorted(self._peers)
        if self.device_id not in self._peers or len(order) < self.config.threshold:
            raise SecureAggregationError(f"{len(order)} devices advertised, need a threshold "
                                         f"of {self.config.threshold} including us")  # fmt: skip
        n, t = len(order), self.config.threshold
        seed_shares = split_secret(self._self_mask_seed, n, t)
        key_shares = split_secret(masking.private_bytes(self._mask_key), n, t)
        return [self._seal(peer, seed_shares[i], key_shares[i]) for i, peer in enumerate(order)]

    def _seal(self, peer: str, seed_share: Share, key_share: Share) -> EncryptedShare:
        key = self._share_key(peer)
        associated = share_associated_data(self.device_id, peer, self.config.context)
        plaintext = seed_share.to_bytes() + key_share.to_bytes()
        return EncryptedShare(self.device_id, peer, masking.encrypt_for(key, plaintext, associated))

    def _share_key(self, peer: str) -> bytes:
        public = self._peers[peer].cipher_public
        return masking.agree(self._cipher_key, public, b"share", self.config.context)

    def masked_input(self, values: Vector, shares: list[EncryptedShare]) -> MaskedInput:
        """Phase 3: keep the shares sent to us; mask `values` against every device that sent one."""
        if values.shape != (self.config.vector_length,):
            raise SecureAggregationError(f"vector of {values.shape}, expected "
                                         f"({self.config.vector_length},)")  # fmt: skip
        for sealed in shares:
            self._open(sealed)
        self._masked_with = tuple(sorted(self._held))
        if self.device_id not in self._held:
            raise SecureAggregationError("our own share did not come back from the aggregator")
        masked = add_mod(values, masking.prg_mask(self._self_mask_seed, values.size))
        for peer in self._masked_with:
            if peer != self.device_id:
                masked = self._apply_pair_mask(masked, peer)
        return MaskedInput(self.device_id, masked)

    def _open(self, sealed: EncryptedShare) -> None:
        if sealed.receiver != self.device_id or sealed.sender not in self._peers:
            raise SecureAggregationError(f"share from {sealed.sender!r} is not for us")
        associated = share_associated_data(sealed.sender, self.device_id, self.config.context)
        plain = masking.decrypt_from(self._share_key(sealed.sender), sealed.ciphertext, associated)
        if len(plain) != 2 * _SHARE_BYTES:
            raise SecureAggregationError("a decrypted share has the wrong size")
        self._held[sealed.sender] = _HeldShares(plain[:_SHARE_BYTES], plain[_SHARE_BYTES:])

    def _apply_pair_mask(self, masked: Vector, peer: str) -> Vector:
        seed = pair_seed(self._mask_key, self._peers[peer].mask_public, self.config.context)
        mask = masking.prg_mask(seed, masked.size)
        return add_mod(masked, mask) if self.device_id < peer else sub_mod(masked, mask)

    def unmask(self, request: UnmaskRequest) -> UnmaskResponse:
        """Phase 4: reveal self-mask shares of survivors and mask-key shares of the dropped."""
        survivors, dropped = set(request.survivors), set(request.dropped)
        if survivors & dropped or self.device_id not in survivors:
            raise SecureAggregationError("unmask request is inconsistent; refusing to answer")
        if not survivors | dropped <= set(self._masked_with):
            raise SecureAggregationError("unmask request names devices we never masked with")
        if len(survivors) < self.config.threshold:
            raise SecureAggregationError("fewer survivors than the threshold; refusing to answer")
        return UnmaskResponse(
            self.device_id,
            {v: self._held[v].self_mask for v in sorted(survivors)},
            {v: self._held[v].mask_key for v in sorted(dropped)},
        )


def pair_seed(own_mask_key: X25519PrivateKey, peer_mask_public: bytes, context: bytes) -> bytes:
    """The seed two devices share for their pairwise mask."""
    return masking.agree(own_mask_key, peer_mask_public, b"mask", context)
