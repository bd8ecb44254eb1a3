"""What the round core is configured with: the operator's settings, keys and strategy.

Plain values, so the shell (`aggregator.service`), the command line and tests build a core the
same way; the core itself lives in `aggregator.round_core`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aggregator.rate_limit import RateLimit
from aggregator.update_bounds import BoundsPolicy
from fleet_protocol.messages import FitConfig
from fleet_protocol.types import ArrayState, Weights
from fleet_protocol.wire import VerifyKey

MAX_UPDATE_BYTES = 8 * 1024 * 1024
Evaluate = Callable[[Weights], float]


class Strategy(Protocol):
    """What the core needs of an `aggregator.strategies` strategy."""

    def configure_fit(self, config: FitConfig) -> FitConfig: ...
    def begin_round(self, global_weights: Weights) -> None: ...
    def accumulate(self, delta: Weights, num_examples: int, device_id: str) -> None: ...
    def finish_round(self, global_weights: Weights) -> Weights: ...
    def state_to_arrays(self) -> ArrayState: ...
    def state_from_arrays(self, state: ArrayState) -> None: ...
    def round_report(self) -> dict[str, float | int]: ...


@dataclass(frozen=True)
class AggregatorConfig:
    """What the operator chose on the command line."""

    fleet: str
    rounds: int
    min_clients: int
    deadline_s: float
    codec: str = "int8"  # `--codec` text: int8, topk:0.05+zstd, ... (`update_encoding`)
    fit: FitConfig = field(default_factory=FitConfig)
    keep_model_versions: int = 2
    max_update_bytes: int = MAX_UPDATE_BYTES
    bounds: BoundsPolicy = field(default_factory=BoundsPolicy)
    rate_limit: RateLimit = field(default_factory=RateLimit)
    promotion_margin: float | None = None  # publish only if holdout accuracy >= best - margin


@dataclass(frozen=True)
class Trust:
    """Keys: who may send updates (`verify_key`), what signs our own messages (`signing_key`)."""

    verify_key: VerifyKey | None = None
    signing_key: Ed25519PrivateKey | None = None
