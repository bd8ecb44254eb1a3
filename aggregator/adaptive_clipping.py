"""Private adaptive clipping (Andrew et al., 2021, "Differentially private learning with
adaptive clipping"): the clip norm follows a quantile of the update norms.

Each round every sampled update gives one bit, "my norm was at most the clip" (centred to
+-1/2, so one device moves their sum by at most 1/2). The sum is noised with N(0, sigma_b^2) and
divided by the expected number of updates; the clip moves geometrically towards the target
quantile: C <- C * exp(-eta * (b - gamma)). The bits cost privacy too. Andrew et al. (Thm 1):
releasing the clipped sum with noise multiplier z_delta and the bit sum with sigma_b is one
Gaussian mechanism of multiplier z, where z^-2 = z_delta^-2 + (2 sigma_b)^-2. So the operator
chooses the z the accountant composes, and the update noise is raised to z_delta to pay for the
bits. Pure: the caller passes the random generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fleet_protocol.differential_privacy import PrivacyConfigError


@dataclass(frozen=True)
class AdaptiveClipConfig:
    """Target quantile gamma, geometric rate eta, noise std sigma_b on the sum of bits."""

    target_quantile: float = 0.5
    learning_rate: float = 0.2
    bit_noise_std: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.target_quantile < 1:
            raise PrivacyConfigError("adaptive clip target quantile must be in (0, 1)")
        if self.learning_rate <= 0 or self.bit_noise_std <= 0:
            raise PrivacyConfigError("adaptive clip learning rate and bit noise must be > 0")


def update_noise_multiplier(total_noise_multiplier: float, bit_noise_std: float) -> float:
    """z_delta: the noise multiplier on the clipped sum that leaves z for the accountant."""
    rest = total_noise_multiplier**-2 - (2.0 * bit_noise_std) ** -2
    if rest <= 0:
        raise PrivacyConfigError(
            f"bit noise std {bit_noise_std} too small for noise multiplier "
            f"{total_noise_multiplier}: need 2 * sigma_b > z"
        )
    return 1.0 / math.sqrt(rest)


def unclipped_bit(norm: float, clip_norm: float) -> float:
    """The centred bit a device gives: +1/2 if its norm is at most the clip, else -1/2."""
    return 0.5 if norm <= clip_norm else -0.5


def next_clip_norm(
    clip_norm: float,
    bit_sum: float,
    expected_count: float,
    config: AdaptiveClipConfig,
    rng: np.random.Generator,
) -> float:
    """The next round's clip from this round's centred bits (noised, fixed denominator)."""
    noisy = bit_sum + float(rng.normal(0.0, config.bit_noise_std))
    fraction_below = noisy / expected_count + 0.5
    return clip_norm * math.exp(-config.learning_rate * (fraction_below - config.target_quantile))
