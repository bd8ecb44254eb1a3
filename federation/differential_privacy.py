"""Client-level differential privacy: clip each update, add Gaussian noise, account the budget.

Every device's update is clipped to L2 norm `clip_norm` across all tensors, so one device
changes the sum of clipped updates by at most `clip_norm` (replace-one adjacency). Gaussian
noise of standard deviation `noise_multiplier * clip_norm` on that sum (central DP, at the
aggregator) or on each update (on-device DP) makes each round a Gaussian mechanism; the
privacy loss over rounds is composed by Google's `dp-accounting` (RDP or PLD) and reported as
epsilon at `delta`. Pure: the caller passes the random generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from federation.errors import FederationError
from federation.types import Weights

ACCOUNTANTS = ("rdp", "pld")
BUDGET_POLICIES = ("stop", "warn")
RDP_ORDERS = [1.25, 1.5, 1.75] + [float(order) for order in (*range(2, 129), 256, 512, 1024)]
SAMPLED_RDP_ORDERS = RDP_ORDERS[3:]
"""Orders below 2 fail to converge for a sub-sampled Gaussian (absl warns); drop them there."""


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


class PrivacyAccountant:
    """Epsilon spent after a number of rounds of the (sub-sampled) Gaussian mechanism."""

    def __init__(self, config: DpConfig, rounds: int = 0) -> None:
        self.config = config
        self.rounds = rounds

    def step(self, rounds: int = 1) -> float:
        """Record `rounds` more released rounds; the epsilon spent so far."""
        self.rounds += rounds
        return self.epsilon()

    def epsilon(self, rounds: int | None = None) -> float:
        """Epsilon at the configured delta after `rounds` (default: those recorded)."""
        count = self.rounds if rounds is None else rounds
        if count == 0:
            return 0.0
        if self.config.noise_multiplier == 0:
            return math.inf
        import dp_accounting  # type: ignore[import-untyped]

        event = dp_accounting.GaussianDpEvent(self.config.noise_multiplier)
        if self.config.sampling_probability < 1:
            event = dp_accounting.PoissonSampledDpEvent(self.config.sampling_probability, event)
        accountant = _new_accountant(self.config.accountant, self.config.sampling_probability)
        accountant.compose(event, count)
        return float(accountant.get_epsilon(self.config.delta))

    def decide_next_round(self) -> str:
        """'continue', 'warn' or 'stop': would one more round exceed the budget?"""
        budget = self.config.epsilon_budget
        if budget is None or self.epsilon(self.rounds + 1) <= budget:
            return "continue"
        return self.config.on_budget


def _new_accountant(kind: str, sampling_probability: float) -> Any:
    import dp_accounting

    if kind == "pld":
        # 1e-3 instead of the default 1e-4: 25x faster, epsilon equal to 1e-6 at 50 rounds
        return dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-3)
    orders = RDP_ORDERS if sampling_probability == 1 else SAMPLED_RDP_ORDERS
    return dp_accounting.rdp.RdpAccountant(orders=orders)
