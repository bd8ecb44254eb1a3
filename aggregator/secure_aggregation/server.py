"""The aggregator's side of secure aggregation: route shares, add masked inputs, unmask the sum.

The server never sees an unmasked input: only sums. It rebuilds a survivor's self-mask seed,
or a dropped device's mask key, from `threshold` shares; a correct device never reveals both
for the same device, which is what keeps a late input from being unmasked alone.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from fleet_protocol.secure_aggregation import masking
from fleet_protocol.secure_aggregation.client import pair_seed
from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.secure_aggregation.fixed_point import Vector, add_mod, sub_mod, unflatten
from fleet_protocol.secure_aggregation.messages import (
    EncryptedShare,
    KeyAdvertisement,
    MaskedInput,
    SecAggConfig,
    UnmaskRequest,
    UnmaskResponse,
)
from fleet_protocol.secure_aggregation.shamir import Share, combine_shares
from fleet_protocol.types import Weights


class SecAggServer:
    """One round of secure aggregation at the aggregator; call the phase methods in order."""

    def __init__(self, config: SecAggConfig) -> None:
        self.config = config
        self.advertised: dict[str, KeyAdvertisement] = {}
        self.shared: tuple[str, ...] = ()
        self.inputs: dict[str, MaskedInput] = {}

    def collect_advertisements(self, ads: list[KeyAdvertisement]) -> list[KeyAdvertisement]:
        """Phase 1: the advertisement list every device receives."""
        self.advertised = {a.device_id: a for a in ads}
        self._need(len(self.advertised), "advertised keys")
        return [self.advertised[d] for d in sorted(self.advertised)]

    def route_shares(self, shares: list[EncryptedShare]) -> dict[str, list[EncryptedShare]]:
        """Phase 2: forward sealed shares to their receivers, from devices that shared with all."""
        by_sender: dict[str, set[str]] = {}
        for share in shares:
            by_sender.setdefault(share.sender, set()).add(share.receiver)
        everyone = set(self.advertised)
        self.shared = tuple(sorted(s for s, to in by_sender.items() if to >= everyone))
        self._need(len(self.shared), "devices that shared their keys")
        routed: dict[str, list[EncryptedShare]] = {d: [] for d in self.shared}
        for share in shares:
            if share.sender in self.shared and share.receiver in routed:
                routed[share.receiver].append(share)
        return routed

    def collect_inputs(self, inputs: list[MaskedInput]) -> UnmaskRequest:
        """Phase 3: keep masked inputs from devices that shared; name survivors and dropped."""
        length = self.config.vector_length
        self.inputs = {m.device_id: m for m in inputs
                       if m.device_id in self.shared and m.values.shape == (length,)}  # fmt: skip
        self._need(len(self.inputs), "masked inputs")
        survivors = tuple(sorted(self.inputs))
        dropped = tuple(d for d in self.shared if d not in self.inputs)
        return UnmaskRequest(survivors, dropped)

    def unmask(self, responses: list[UnmaskResponse], request: UnmaskRequest) -> Vector:
        """Phase 4: the sum of the survivors' inputs (mod 2^32), all masks removed."""
        answered = [r for r in responses if r.device_id in request.survivors]
        self._need(len(answered), "unmask responses")
        total = np.zeros(self.config.vector_length, np.uint32)
        for masked in self.inputs.values():
            total = add_mod(total, masked.values)
        for survivor in request.survivors:
            seed = self._rebuild(answered, survivor, "self_mask_shares")
            total = sub_mod(total, masking.prg_mask(seed, total.size))
        for gone in request.dropped:
            total = self._remove_pair_masks(total, gone, answered, request.survivors)
        return total

    def _remove_pair_masks(
        self, total: Vector, gone: str, answered: list[UnmaskResponse], survivors: tuple[str, ...]
    ) -> Vector:
        key = masking.private_from_bytes(self._rebuild(answered, gone, "mask_key_shares"))
        for survivor in survivors:
            seed = pair_seed(key, self.advertised[survivor].mask_public, self.config.context)
            mask = masking.prg_mask(seed, total.size)
            # the survivor added the mask if it sorts first, else subtracted it: undo that
            total = sub_mod(total, mask) if survivor < gone else add_mod(total, mask)
        return total

    def _rebuild(self, answered: list[UnmaskResponse], owner: str, kind: str) -> bytes:
        shares = [Share.from_bytes(getattr(r, kind)[owner]) for r in answered
                  if owner in getattr(r, kind)]  # fmt: skip
        return combine_shares(shares, self.config.threshold)

    def _need(self, count: int, what: str) -> None:
        if count < self.config.threshold:
            threshold = self.config.threshold
            raise SecureAggregationError(f"{count} {what}, below the threshold {threshold}")


def decode_weighted_mean(
    total: Vector, shapes: list[tuple[int, ...]], config: SecAggConfig
) -> tuple[Weights, float]:
    """The weighted mean delta and the total weight (in examples) from an unmasked sum."""
    values: NDArray[np.float64] = config.fixed_point.decode(total)
    weight = float(values[-1])
    if weight <= 0:
        raise SecureAggregationError("the summed weight is not positive")
    return unflatten(values[:-1] / weight, shapes), weight * config.example_unit
