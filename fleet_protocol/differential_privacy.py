"""Client-level differential privacy: clip each update, add Gaussian noise, account the budget.

Every device's update is clipped to L2 norm `clip_norm` across all tensors, so one device
changes the sum of clipped updates by at most `clip_norm` (replace-one adjacency). Gaussian
noise of standard deviation `noise_multiplier * clip_norm` on that sum (central DP, at the
aggregator) or on each update (on-device DP) makes each round a Gaussian mechanism; the
privacy loss over rounds is composed by Google's `dp-accounting` on the aggregator
(`aggregator.privacy_accountant`); a device, which has no `dp-accounting` (it needs scipy),
computes the epsilon of its own on-device noise exactly with `gaussian_epsilon`. Pure: the
caller passes the random generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fleet_protocol.errors import FederationError
from fleet_protocol.types import Weights

ACCOUNTANTS = ("rdp", "pld")
BUDGET_POLICIES = ("stop", "warn")
PRIVACY_BUDGET = "privacy_budget"
"""Why the aggregator refuses a device past `--max-epsilon`; the device then stops sending."""


class PrivacyConfigError(FederationError):
    """A DP setting is out of range."""

    reason = "dp_config"


class PrivacyBudgetExhaustedError(FederationError):
    """Another round would spend more than the epsilon budget (policy `stop`)."""

    reason = "dp_budget"


@dataclass(frozen=True)
class DpConfig:
    """How much to clip, how much noise, the target delta and the budget policy."""

    noise_multiplier: float
    clip_norm: float
    delta: float = 1e-5
    epsilon_budget: float | None = None
    on_budget: str = "stop"  # or "warn"
    sampling_probability: float = 1.0  # fraction of the fleet sampled per round (Poisson)
    accountant: str = "rdp"  # or "pld"

    def __post_init__(self) -> None:
        if self.noise_multiplier < 0 or not math.isfinite(self.noise_multiplier):
            raise PrivacyConfigError("noise multiplier must be a finite number >= 0")
        if self.clip_norm <= 0 or not math.isfinite(self.clip_norm):
            raise PrivacyConfigError("clip norm must be a finite number > 0")
        if not 0 < self.delta < 1:
            raise PrivacyConfigError("delta must be in (0, 1)")
        if not 0 < self.sampling_probability <= 1:
            raise PrivacyConfigError("sampling probability must be in (0, 1]")
        if self.on_budget not in BUDGET_POLICIES or self.accountant not in ACCOUNTANTS:
            raise PrivacyConfigError(f"policy in {BUDGET_POLICIES}, accountant in {ACCOUNTANTS}")

    @property
    def noise_std(self) -> float:
        """Standard deviation of the noise on a sum of clipped updates."""
        return self.noise_multiplier * self.clip_norm


def global_norm(weights: Weights) -> float:
    """L2 norm of all tensors taken together."""
    return float(math.sqrt(sum(float(np.sum(np.square(w, dtype=np.float64))) for w in weights)))


def clip_update(delta: Weights, clip_norm: float) -> Weights:
    """Scale the update down (never up) so its global L2 norm is at most `clip_norm`."""
    norm = global_norm(delta)
    scale = 1.0 if norm <= clip_norm else clip_norm / norm
    return [(np.asarray(w, np.float64) * scale).astype(np.float32) for w in delta]


def gaussian_noise_like(weights: Weights, std: float, rng: np.random.Generator) -> Weights:
    """Independent N(0, std^2) noise of the same shapes."""
    return [rng.normal(0.0, std, np.shape(w)).astype(np.float32) for w in weights]


def noisy_mean_step(
    clipped_sum: Weights, count: int, config: DpConfig, rng: np.random.Generator
) -> Weights:
    """(sum of clipped updates + N(0, (z C)^2)) / count: the central-DP FedAvg step."""
    if count < 1:
        raise PrivacyConfigError("a noisy mean needs at least one update")
    noise = gaussian_noise_like(clipped_sum, config.noise_std, rng)
    return [((np.asarray(s, np.float64) + n) / count).astype(np.float32)
            for s, n in zip(clipped_sum, noise, strict=True)]  # fmt: skip


def privatize_on_device(delta: Weights, config: DpConfig, rng: np.random.Generator) -> Weights:
    """On-device DP: clip and add N(0, (z C)^2) before the update leaves the device."""
    clipped = clip_update(delta, config.clip_norm)
    noise = gaussian_noise_like(clipped, config.noise_std, rng)
    return [c + n for c, n in zip(clipped, noise, strict=True)]


def gaussian_epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """Exact epsilon at `delta` of `rounds` Gaussian mechanisms with this noise multiplier.

    Composing k Gaussian mechanisms of sensitivity 1 and std z is one Gaussian mechanism of
    std z / sqrt(k) (mu-GDP with mu = sqrt(k) / z, Dong, Roth and Su 2019), whose exact
    privacy profile is delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2) (Balle and
    Wang 2018, Theorem 8). Solved for eps by bisection: a few lines of `math` instead of
    `dp-accounting`, which a device cannot install. No sub-sampling amplification is claimed.
    """
    if rounds <= 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    mu = math.sqrt(rounds) / noise_multiplier
    low, high = 0.0, 1.0
    while _gaussian_delta(mu, high) > delta:
        high *= 2.0
        if high > 1e6:
            return math.inf
    for _ in range(200):
        middle = (low + high) / 2.0
        low, high = (middle, high) if _gaussian_delta(mu, middle) > delta else (low, middle)
    return high


def _gaussian_delta(mu: float, epsilon: float) -> float:
    """delta(eps) of mu-GDP; exp and Phi combined in log space so large eps cannot overflow."""
    first = _normal_cdf(-epsilon / mu + mu / 2.0)
    tail = _normal_cdf(-epsilon / mu - mu / 2.0)
    second = math.exp(epsilon + math.log(tail)) if tail > 0.0 else 0.0
    return first - second


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))
