"""DP-FedAvg (McMahan et al., 2018): a strategy that clips every update and noises their mean.

Each accepted delta is clipped to `clip_norm` and counted once (unweighted: a device's weight
must not depend on its data for the sensitivity bound to hold). At the close of a round the
step is (sum of clipped deltas + N(0, (z C)^2)) / count, and the accountant records one more
released round. It plugs into the aggregator service like any other strategy.

With Poisson sampling the divisor is the expected number of updates (rate x fleet size), not
the count that came (McMahan et al.'s fixed-denominator estimator): the count depends on who
was drawn and would otherwise leak. With adaptive clipping (`aggregator.adaptive_clipping`) the
clip follows a quantile of the norms and the update noise rises to pay for the noised bits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from aggregator.adaptive_clipping import (
    AdaptiveClipConfig,
    next_clip_norm,
    unclipped_bit,
    update_noise_multiplier,
)
from aggregator.privacy_accountant import PrivacyAccountant
from aggregator.strategies.base import StreamingStrategy
from fleet_protocol.differential_privacy import (
    DpConfig,
    PrivacyBudgetExhaustedError,
    clip_update,
    gaussian_noise_like,
    global_norm,
)
from fleet_protocol.types import ArrayState, Weights


class DpFedAvg(StreamingStrategy):
    """Central client-level DP on the FedAvg step; `accountant` tracks epsilon per round."""

    def __init__(
        self,
        config: DpConfig,
        rng: np.random.Generator | None = None,
        rounds_already_released: int = 0,
        *,
        expected_count: float | None = None,
        adaptive: AdaptiveClipConfig | None = None,
    ) -> None:
        super().__init__()
        self.config, self.adaptive, self.expected_count = config, adaptive, expected_count
        self.accountant = PrivacyAccountant(config, rounds_already_released)
        self._rng = rng or np.random.default_rng()  # seeded from OS entropy
        self.clip_norm = config.clip_norm  # moves each round with adaptive clipping
        self.update_noise_multiplier = config.noise_multiplier
        if adaptive is not None and config.noise_multiplier > 0:
            self.update_noise_multiplier = update_noise_multiplier(
                config.noise_multiplier, adaptive.bit_noise_std
            )
        self.clipped = 0  # updates whose norm was above the clip this round
        self.bit_sum = 0.0  # centred "norm <= clip" bits of the round (adaptive clipping)

    def _reset_round(self) -> None:
        super()._reset_round()
        self.clipped, self.bit_sum = 0, 0.0

    def _add(self, delta: Weights, flat: np.ndarray, num_examples: int, device_id: str) -> None:
        norm = global_norm(delta)
        self.clipped += int(norm > self.clip_norm)
        self.bit_sum += unclipped_bit(norm, self.clip_norm)
        clipped = clip_update(delta, self.clip_norm)
        self.mean.add_validated(clipped, 1)

    def _aggregate_step(self) -> list[np.ndarray]:
        count = self.num_updates
        divisor = self.expected_count or count
        scale = count / divisor
        mean = self.mean_delta()  # sum / count, float64
        std = self.update_noise_multiplier * self.clip_norm / divisor
        noise = gaussian_noise_like(mean, std, self._rng)
        self.accountant.step()
        if self.adaptive is not None:
            self.clip_norm = next_clip_norm(
                self.clip_norm, self.bit_sum, divisor, self.adaptive, self._rng
            )
        return [m * scale + n for m, n in zip(mean, noise, strict=True)]

    def _state_to_arrays(self) -> ArrayState:
        state = super()._state_to_arrays()
        state["dp/clip_norm"] = np.array(self.clip_norm, np.float64)
        state["dp/bit_sum"] = np.array(self.bit_sum, np.float64)
        return state

    def _state_from_arrays(self, state: ArrayState) -> None:
        super()._state_from_arrays(state)
        if "dp/clip_norm" in state:
            self.clip_norm = float(state["dp/clip_norm"])
            self.bit_sum = float(state["dp/bit_sum"])

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far at the configured delta."""
        return self.accountant.epsilon()

    def round_report(self) -> dict[str, float | int]:
        """Clipped updates of the round and the privacy spent so far (read before the next)."""
        return {"dp_clipped": self.clipped, "dp_epsilon": round(self.epsilon, 4),
                "dp_delta": self.config.delta, "dp_rounds": self.accountant.rounds,
                "dp_clip_norm": round(self.clip_norm, 6)}  # fmt: skip


def with_privacy_report(
    strategy: DpFedAvg,
    downstream: Callable[[dict[str, Any]], None],
    warn: Callable[[str], None],
) -> Callable[[dict[str, Any]], None]:
    """An `on_metrics` that applies the budget policy after passing the metrics on.

    The metrics already carry epsilon (`DpFedAvg.round_report`). Raises
    `PrivacyBudgetExhaustedError` (policy stop) when one more round would overspend.
    """

    def report(metrics: dict[str, Any]) -> None:
        downstream(metrics)
        decision = strategy.accountant.decide_next_round()
        if decision == "continue":
            return
        spent, budget = strategy.epsilon, strategy.config.epsilon_budget
        message = f"privacy budget: epsilon {spent:.3f} spent, next round would exceed {budget}"
        if decision == "stop":
            raise PrivacyBudgetExhaustedError(f"{message}; stopping")
        warn(f"{message}; continuing (--dp-on-budget warn)")

    return report
