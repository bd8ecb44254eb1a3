"""One secure-aggregation round inside the aggregator's round core (`iomt aggregator --secure-agg`).

After the round is announced, the coordinator runs the four phases; the result is the
survivors' weighted mean delta, which the core folds into its strategy as a single update. The
threshold is a majority of the devices known to be online (at least the quorum), so fewer than
half of them can never unmask anything alone. Pure: the clock is injected, messages go out as
`Publish` values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aggregator.secure_aggregation.coordinator import SecAggCoordinator
from aggregator.secure_aggregation.server import decode_weighted_mean
from fleet_protocol.publish import Publish
from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.secure_aggregation.fixed_point import FixedPoint
from fleet_protocol.secure_aggregation.messages import SecAggConfig
from fleet_protocol.types import Weights
from fleet_protocol.wire import VerifyKey

SECURE_AGGREGATE_ID = "secure-aggregate"
"""The pseudo device id the core records the round's single folded update under."""


@dataclass(frozen=True)
class SecureAggOptions:
    """Operator settings for secure rounds."""

    phase_timeout_s: float = 10.0
    frac_bits: int = 16
    example_unit: float = 100.0


@dataclass(frozen=True)
class SecureRound:
    """What the core knows of the round it runs securely."""

    fleet: str
    round_id: int
    base_version: int
    shapes: list[tuple[int, ...]]
    online: frozenset[str]
    quorum: int
    give_up_unix: float  # the whole round fails if the phases are not done by then


@dataclass(frozen=True)
class SecureRoundResult:
    """The weighted mean delta (None if the round failed), who took part, why it failed."""

    mean_delta: Weights | None
    num_examples: int
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]
    rejected: int
    error: str | None
    bytes_in: int = 0
    bytes_out: int = 0
    device_id: str = SECURE_AGGREGATE_ID


def round_config(round_: SecureRound, options: SecureAggOptions) -> SecAggConfig:
    """Threshold: a majority of the devices online, and at least the quorum (and 2)."""
    threshold = max(2, round_.quorum, len(round_.online) // 2 + 1)
    length = sum(math.prod(shape) for shape in round_.shapes) + 1
    context = f"{round_.fleet}/{round_.round_id}/{round_.base_version}".encode()
    return SecAggConfig(threshold, length, context, FixedPoint(options.frac_bits),
                        options.example_unit)  # fmt: skip


class SecureCollection:
    """The phases of one masked round as the core drives them: messages in, publishes out."""

    def __init__(self, round_: SecureRound, coordinator: SecAggCoordinator,
                 config: SecAggConfig, clock: Callable[[], float]) -> None:  # fmt: skip
        self.round, self.coordinator, self.config, self._clock = round_, coordinator, config, clock
        self._outgoing: list[Publish] = []

    @classmethod
    def start(
        cls,
        round_: SecureRound,
        options: SecureAggOptions,
        signing_key: Ed25519PrivateKey | None,
        verify_device: VerifyKey | None,
        *,
        clock: Callable[[], float],
    ) -> SecureCollection:
        """Create the coordinator and its first (config) broadcast, kept for `take_outgoing`."""
        config = round_config(round_, options)
        coordinator = SecAggCoordinator(
            round_.fleet, round_.round_id, config, round_.online, options.phase_timeout_s,
            signing_key, verify_device, clock=clock,
            min_devices=max(round_.quorum, len(round_.online)),
        )  # fmt: skip
        collection = cls(round_, coordinator, config, clock)
        collection._outgoing = coordinator.start()
        return collection

    def take_outgoing(self) -> list[Publish]:
        messages, self._outgoing = self._outgoing, []
        return messages

    @property
    def done(self) -> bool:
        return self.coordinator.done

    def wake_at(self) -> float:
        """The next phase deadline, or the round's own, whichever comes first."""
        return min(self.coordinator.deadline, self.round.give_up_unix)

    def handle(self, topic: str, payload: bytes) -> list[Publish]:
        return self.coordinator.handle(topic, payload)

    def tick(self) -> list[Publish]:
        """Advance a phase past its deadline; give up on the round past the round's."""
        if self.done:
            return []
        if self._clock() >= self.round.give_up_unix:
            self.coordinator.error = "round deadline passed before the phases finished"
            return []
        return self.coordinator.tick()

    def result(self) -> SecureRoundResult:
        """Decode the survivors' weighted mean delta (after `done`)."""
        coordinator = self.coordinator
        request = coordinator.request
        survivors = request.survivors if request else ()
        dropped = request.dropped if request else ()
        mean, examples = None, 0.0
        error: str | None = coordinator.error or "no result"
        if coordinator.result is not None:
            try:
                mean, examples = decode_weighted_mean(
                    coordinator.result, self.round.shapes, self.config
                )
                error = None
            except SecureAggregationError as exc:
                error = str(exc)
        return SecureRoundResult(
            mean, max(1, round(examples)) if mean is not None else 0, survivors, dropped,
            coordinator.rejected, error, coordinator.bytes_in, coordinator.bytes_out,
        )  # fmt: skip
