"""Shamir secret sharing of 32-byte secrets over the prime field GF(2^521 - 1).

Any `threshold` shares rebuild the secret; fewer reveal nothing about it. Share x-coordinates
are 1..n (0 is the secret). Randomness comes from `secrets` (the OS CSPRNG).
"""

from __future__ import annotations

import secrets as _csprng
from dataclasses import dataclass

from fleet_protocol.secure_aggregation.errors import SecureAggregationError

PRIME = 2**521 - 1  # a Mersenne prime larger than any 32-byte secret
SECRET_BYTES = 32


@dataclass(frozen=True)
class Share:
    """One point (x, y) of the sharing polynomial."""

    x: int
    y: int

    def to_bytes(self) -> bytes:
        return self.x.to_bytes(2, "big") + self.y.to_bytes(66, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        if len(data) != 68:
            raise SecureAggregationError(f"a share is 68 bytes, got {len(data)}")
        return cls(int.from_bytes(data[:2], "big"), int.from_bytes(data[2:], "big"))


def split_secret(secret: bytes, num_shares: int, threshold: int) -> list[Share]:
    """`num_shares` shares of `secret`, any `threshold` of which rebuild it."""
    if len(secret) != SECRET_BYTES:
        raise SecureAggregationError(f"secret must be {SECRET_BYTES} bytes")
    if not 1 <= threshold <= num_shares < 2**16:
        raise SecureAggregationError(f"need 1 <= threshold {threshold} <= shares {num_shares}")
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [_csprng.randbelow(PRIME) for _ in range(threshold - 1)]
    return [Share(x, _evaluate(coefficients, x)) for x in range(1, num_shares + 1)]


def _evaluate(coefficients: list[int], x: int) -> int:
    result = 0
    for coefficient in reversed(coefficients):  # Horner
        result = (result * x + coefficient) % PRIME
    return result


def combine_shares(shares: list[Share], threshold: int) -> bytes:
    """Rebuild the secret from at least `threshold` distinct shares (Lagrange at 0)."""
    chosen = {s.x: s for s in shares}
    if len(chosen) < threshold:
        raise SecureAggregationError(f"{len(chosen)} shares, need {threshold} to rebuild")
    points = list(chosen.values())[:threshold]
    secret = 0
    for i, share in enumerate(points):
        numerator, denominator = 1, 1
        for j, other in enumerate(points):
            if i != j:
                numerator = numerator * (-other.x) % PRIME
                denominator = denominator * (share.x - other.x) % PRIME
        secret = (secret + share.y * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >= 2 ** (8 * SECRET_BYTES):
        raise SecureAggregationError("shares do not rebuild a 32-byte secret (corrupt share?)")
    return secret.to_bytes(SECRET_BYTES, "big")
