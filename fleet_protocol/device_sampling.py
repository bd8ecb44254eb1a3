"""Which devices take part in a round: Poisson sampling that both sides can check.

Device `d` joins round `r` when SHA-256(seed | r | d), read as a number in [0, 1), is below the
announced rate `q`. Each device is thus in each round independently with probability `q` (a
Poisson sample, what `dp_accounting.PoissonSampledDpEvent` amplifies), the device decides alone
from the announcement, and the aggregator refuses an update from a device that was not drawn.
The seed is fresh per round and secret until announced (`aggregator.privacy_ledger`); who can
read the announcement knows the sample, so the amplification holds only against those who
cannot (docs/threat-model.md). Pure, edge-safe.
"""

from __future__ import annotations

import hashlib

NOT_SAMPLED = "not_sampled"
"""Why the aggregator refuses an update from a device that was not drawn."""
_SCALE = float(2**64)


def sampling_draw(seed: str, round_id: int, device_id: str) -> float:
    """The device's uniform draw in [0, 1) for this round."""
    digest = hashlib.sha256(f"{seed}|{round_id}|{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def is_sampled(seed: str, round_id: int, device_id: str, rate: float) -> bool:
    """Is the device in this round's sample (always, at rate 1)?"""
    return rate >= 1.0 or sampling_draw(seed, round_id, device_id) < rate
