"""DP-FedAvg (McMahan et al., 2018): a strategy that clips every update and noises their mean.

Each accepted delta is clipped to `clip_norm` and counted once (unweighted: a device's weight
must not depend on its data for the sensitivity bound to hold). At the close of a round the
step is (sum of clipped deltas + N(0, (z C)^2)) / count, and the accountant records one more
released round. It plugs into the aggregator service like any other strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from aggregator.privacy_accountant import PrivacyAccountant
from aggregator.strategies.base import StreamingStrategy
from fleet_protocol.differential_privacy import (
    DpConfig,
    PrivacyBudgetExhaustedError,
    clip_update,
    gaussian_noise_like,
    global_norm,
)
from fleet_protocol.types import Weights


class DpFedAvg(StreamingStrategy):
    """Central client-level DP on the FedAvg step; `accountant` tracks epsilon per round."""

    def __init__(
        self,
        config: DpConfig,
        rng: np.random.Generator | None = None,
        rounds_already_released: int = 0,
    ) -> None:
        super().__init__()
        self.config = config
        self.accountant = PrivacyAccountant(config, rounds_already_released)
        self._rng = rng or np.random.default_rng()  # seeded from OS entropy
        self.clipped = 0  # updates whose norm was above the clip this round

    def _reset_round(self) -> None:
        super()._reset_round()
        self.clipped = 0

    def _add(self, delta: Weights, flat: np.ndarray, num_examples: int, device_id: str) -> None:
        self.clipped += int(global_norm(delta) > self.config.clip_norm)
        clipped = clip_update(delta, self.config.clip_norm)
        self.mean.add_validated(clipped, 1)

    def _aggregate_step(self) -> list[np.ndarray]:
        count = self.num_updates
        mean = self.mean_delta()  # sum / count, float64
        noise = gaussian_noise_like(mean, self.config.noise_std / count, self._rng)
        self.accountant.step()
        return [m + n for m, n in zip(mean, noise, strict=True)]

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far at the configured delta."""
        return self.accountant.epsilon()

    def round_report(self) -> dict[str, float | int]:
        """Clipped updates of the round and the privacy spent so far (read before the next)."""
        return {"dp_clipped": self.clipped, "dp_epsilon": round(self.epsilon, 4),
                "dp_delta": self.config.delta, "dp_rounds": self.accountant.rounds}  # fmt: skip


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
