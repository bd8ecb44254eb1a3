"""Buffered asynchronous rounds (FedBuff-style) as a pure state machine beside the synchronous one.

Devices never wait for each other: each trains on the newest global version it has and sends a
delta that names the version it was trained from (`ModelUpdate.base_version`). The aggregator
folds every acceptable delta into a buffer, scaled down by its staleness (how many versions were
published since its base), and applies the buffer as the next version as soon as it holds
`buffer_size` updates. A delta more than `max_staleness` versions old is refused
(`too_stale`), so a device that fell far behind cannot drag the head back.

One update per device per buffer: a device's second, different update while its first is in the
open buffer (typically its late update of the previous version arrived first, then its fresh
one) is held for the next buffer, unacknowledged, and folded there with the staleness it has
then. FedBuff aggregates every update it receives once, discounted by its staleness at the time
it is applied; holding keeps that (no device's training is thrown away, as a `duplicate`
refusal did) while a buffer of K still means K devices, so no single fast device makes up a
version. A held update is acked only once it is folded and stored, so a restart loses nothing
acknowledged: the device sends the same bytes again and they are held again.

Everything else is the synchronous core's: decoding, the message gate, bounds, the strategy's
fold, promotion, the order of effects and the state file. A buffer is stored as a round (one
round per published version), so a restart mid-buffer resumes with every acknowledged update
still in the accumulator, and a resend of acked bytes is recognised as in a synchronous round.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

from aggregator.collecting_round import CollectingRound
from aggregator.core_config import AggregatorConfig, Evaluate, Strategy, Trust
from aggregator.promotion import Verdict
from aggregator.round_core import AggregatorCore
from aggregator.round_events import Log, RoundMetrics, RoundStatus
from aggregator.round_memory import RoundMemory
from aggregator.state_store import AcceptedUpdate
from aggregator.update_bounds import update_violation
from aggregator.update_validation import (
    DeviceHistory,
    OpenRound,
    check_update,
    is_resend_of_accepted,
)
from fleet_protocol.messages import ModelUpdate, RoundAnnouncement
from fleet_protocol.types import Weights


@dataclass(frozen=True)
class AsyncSettings:
    """How the buffer works: updates per new version, and the oldest base still accepted."""

    buffer_size: int
    max_staleness: int  # the operator's defaults live with `iomt aggregator`

    def __post_init__(self) -> None:
        if self.buffer_size < 1 or self.max_staleness < 0:
            raise ValueError("buffer_size must be >= 1 and max_staleness >= 0")


def staleness_weight(staleness: int) -> float:
    """FedBuff's polynomial discount: a delta `s` versions old counts 1/sqrt(1+s)."""
    return 1.0 / math.sqrt(1.0 + staleness)


def scale_delta(delta: Weights, weight: float) -> Weights:
    """The delta times its staleness weight, dtype kept."""
    return [(d * d.dtype.type(weight)).astype(d.dtype, copy=False) for d in delta]


@dataclass(frozen=True)
class HeldUpdate:
    """A device's update that waits for the next buffer (its first is in the open one)."""

    topic_device: str
    update: ModelUpdate
    payload: bytes
    sha256: str


class AsyncAggregatorCore(AggregatorCore):
    """`handle(event, now) -> effects` like `AggregatorCore`; `config.rounds` counts versions.

    The buffer's quorum is `buffer_size` (it replaces `config.min_clients`), and there is no
    deadline: a buffer is applied when it is full, never on a timer. Secure aggregation, worker
    coordination and the central-DP ledger work on synchronous rounds and are not offered here.
    """

    def __init__(
        self,
        config: AggregatorConfig,
        strategy: Strategy,
        memory: RoundMemory,
        initial_weights: Weights,
        settings: AsyncSettings,
        *,
        trust: Trust | None = None,
        evaluate: Evaluate | None = None,
    ) -> None:
        config = replace(config, min_clients=settings.buffer_size)
        super().__init__(config, strategy, memory, initial_weights, trust=trust,
                         evaluate=evaluate)  # fmt: skip
        self.settings = settings
        self._staleness: dict[int, list[int]] = {}  # buffer (round) -> staleness of each update
        self._held: dict[str, HeldUpdate] = {}  # device -> its update for the next buffer

    def wake_at(self) -> float | None:
        """Never: only updates fill a buffer."""
        return None

    def waiting_line(self, now: float) -> str | None:
        round_ = self._round
        if round_ is None:
            return None
        return (f"buffer {round_.round_id} on version {round_.base.version}:"
                f" {len(round_.participants)}/{self.settings.buffer_size} updates")  # fmt: skip

    def _announcement(self, round_: CollectingRound) -> RoundAnnouncement:
        return replace(super()._announcement(round_), max_staleness=self.settings.max_staleness)

    def _should_close(self, round_: CollectingRound) -> bool:
        return len(round_.participants) >= self.settings.buffer_size

    def _consider(
        self, round_: CollectingRound, device_id: str, update: ModelUpdate, payload: bytes
    ) -> None:
        """Validate against the update's own version, then fold it in with its staleness weight."""
        staleness = round_.base.version - update.base_version
        reason = self._version_problem(round_, update, staleness)
        history = self._history(round_, update.device_id)
        own = OpenRound(self.config.fleet, update.round_id, update.base_version)
        reason = check_update(update, device_id, own, history) or reason
        digest = hashlib.sha256(payload).hexdigest()
        if reason == "duplicate" and is_resend_of_accepted(history, digest):
            round_.resent += 1
            self._ack(device_id, update, True, "already stored")
            return
        if reason == "duplicate" and self._hold(
            round_, HeldUpdate(device_id, update, payload, digest), own, history
        ):
            return  # fmt: skip
        if reason is not None:
            self._reject(device_id, update, reason, f"from {device_id} (staleness {staleness})")
            return
        violation = update_violation(update.delta, round_.bounds)  # the raw delta is bounded
        if violation is not None:
            self._reject(device_id, update, "out_of_bounds", violation)
            return
        self._fold(round_, update, staleness, AcceptedUpdate(
            round_.round_id, update.device_id, update.sequence, update.num_examples,
            len(payload), digest,
        ))  # fmt: skip

    def _hold(self, round_: CollectingRound, held: HeldUpdate, own: OpenRound,
              history: DeviceHistory) -> bool:  # fmt: skip
        """Hold a device's second update of this buffer for the next one, if nothing else is
        wrong with it (its resend while held is recognised); False: refuse it as `duplicate`."""
        device = held.update.device_id
        waiting = self._held.get(device)
        if waiting is not None:
            if waiting.sha256 != held.sha256:
                return False  # a third update while one waits: refused
            round_.resent += 1
            return True
        if check_update(held.update, held.topic_device, own,
                        DeviceHistory(None, None, history.last_sequence)) is not None:  # fmt: skip
            return False
        self._held[device] = held
        self._emit(Log(f"buffer {round_.round_id}: {device} already has an update in it; its"
                       f" sequence {held.update.sequence} waits for the next buffer"))  # fmt: skip
        return True

    def _advance(self) -> None:
        """Open the next buffer, then fold the updates held for it first (acked as folded)."""
        super()._advance()
        round_, held = self._round, self._held
        if round_ is None or not held:
            return
        self._held = {}
        for device in sorted(held):
            waiting = held[device]
            self._consider(round_, waiting.topic_device, waiting.update, waiting.payload)
        if self._should_close(round_):
            self._close(round_)

    def _version_problem(
        self, round_: CollectingRound, update: ModelUpdate, staleness: int
    ) -> str | None:
        """`stale` for a version or buffer that does not exist yet, `too_stale` past the cap."""
        if (
            update.round_id > round_.round_id
            or update.base_version not in self.memory.version_sha256
        ):
            return "stale"
        if staleness < 0:
            return "stale"
        if staleness > self.settings.max_staleness:
            return "too_stale"
        return None

    def _fold(
        self, round_: CollectingRound, update: ModelUpdate, staleness: int, row: AcceptedUpdate
    ) -> None:
        weight = staleness_weight(staleness)
        self._emit(
            Log(
                f"buffer {round_.round_id}: {update.device_id} trained on version"
                f" {update.base_version}, staleness {staleness}, weight {weight:.3f}"
            )
        )
        self._staleness.setdefault(round_.round_id, []).append(staleness)
        self._accept(round_, replace(update, delta=scale_delta(update.delta, weight)), row)

    def _metrics(
        self, round_: CollectingRound, version: int, status: RoundStatus, verdict: Verdict
    ) -> RoundMetrics:
        metrics = super()._metrics(round_, version, status, verdict)
        seen = self._staleness.pop(round_.round_id, [])  # updates folded by this process
        metrics.extra.update(
            mode="async",
            buffer_size=self.settings.buffer_size,
            staleness_max=max(seen, default=0),
            staleness_mean=round(sum(seen) / len(seen), 3) if seen else 0.0,
            held_for_next=len(self._held),
        )
        return metrics
