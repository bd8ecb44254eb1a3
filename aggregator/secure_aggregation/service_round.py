"""One secure-aggregation round as the aggregator service runs it (`iomt aggregator --secure-agg`).

After the round is announced, the coordinator runs the four phases on the service's own link;
the result is the survivors' weighted mean delta, which the service folds into its strategy as
a single update. The threshold is a majority of the devices known to be online (at least the
quorum), so fewer than half of them can never unmask anything alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aggregator.secure_aggregation.coordinator import SecAggCoordinator
from aggregator.secure_aggregation.mqtt_round import Link, run_coordinator
from aggregator.secure_aggregation.server import decode_weighted_mean
from fleet_protocol.mqtt_link import LinkEvent
from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.secure_aggregation.fixed_point import FixedPoint
from fleet_protocol.secure_aggregation.messages import SecAggConfig
from fleet_protocol.types import Weights
from fleet_protocol.wire import VerifyKey

SECURE_AGGREGATE_ID = "secure-aggregate"
"""The pseudo device id the service records the round's single folded update under."""


@dataclass(frozen=True)
class SecureAggOptions:
    """Operator settings for secure rounds."""

    phase_timeout_s: float = 10.0
    frac_bits: int = 16
    example_unit: float = 100.0


@dataclass(frozen=True)
class SecureRound:
    """What the service needs to run one secure round."""

    fleet: str
    round_id: int
    base_version: int
    shapes: list[tuple[int, ...]]
    online: frozenset[str]
    quorum: int


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


def round_config(round_: SecureRound, options: SecureAggOptions) -> SecAggConfig:
    """Threshold: a majority of the devices online, and at least the quorum (and 2)."""
    threshold = max(2, round_.quorum, len(round_.online) // 2 + 1)
    length = sum(math.prod(shape) for shape in round_.shapes) + 1
    context = f"{round_.fleet}/{round_.round_id}/{round_.base_version}".encode()
    return SecAggConfig(threshold, length, context, FixedPoint(options.frac_bits),
                        options.example_unit)  # fmt: skip


def run_secure_round(
    link: Link,
    round_: SecureRound,
    options: SecureAggOptions,
    *,
    signing_key: Ed25519PrivateKey | None,
    verify_device: VerifyKey | None,
    timeout_s: float,
    on_other: Callable[[LinkEvent], None] | None = None,
) -> SecureRoundResult:
    """Run the phases; decode the survivors' weighted mean delta."""
    config = round_config(round_, options)
    coordinator = SecAggCoordinator(
        round_.fleet, round_.round_id, config, round_.online, options.phase_timeout_s,
        signing_key, verify_device, min_devices=max(round_.quorum, len(round_.online)),
    )  # fmt: skip
    run_coordinator(link, coordinator, timeout_s, on_other)
    traffic = {"bytes_in": coordinator.bytes_in, "bytes_out": coordinator.bytes_out}
    request = coordinator.request
    survivors = request.survivors if request else ()
    dropped = request.dropped if request else ()
    if coordinator.result is None:
        error = coordinator.error or "no result"
        return SecureRoundResult(None, 0, survivors, dropped, coordinator.rejected, error,
                                 **traffic)  # fmt: skip
    try:
        mean, examples = decode_weighted_mean(coordinator.result, round_.shapes, config)
    except SecureAggregationError as exc:
        return SecureRoundResult(None, 0, survivors, dropped, coordinator.rejected, str(exc),
                                 **traffic)  # fmt: skip
    return SecureRoundResult(mean, max(1, round(examples)), survivors, dropped,
                             coordinator.rejected, None, **traffic)  # fmt: skip
