"""A site aggregator that runs secure aggregation with its own devices (`--role site --secure-agg`).

The site follows the coordinator's round and head (bridged down to its broker, verified with the
coordinator's key) and, as soon as both are known, runs the masked round's four phases with the
devices on its broker (`aggregator.secure_aggregation.service_round`, the same phases the single
aggregator runs). It learns only the sum of its surviving devices' updates, never one update,
and sends that sum upstream as its signed `PartialSum` (`Σ nᵢ·Δᵢ`, `Σ nᵢ`, the survivors): the
coordinator adds it like any worker's or site's and sees one sum per site.

The site's own quorum is `--min-clients`: the keys phase waits for that many devices (or its
phase deadline), and the Shamir threshold is at least that (and 2). The phases must end before
the coordinator's deadline less `cutoff_s`, or the site gives the round up and sends nothing.
Phases are not persisted: a site restarted mid-round cannot finish it (its devices answered the
dead process), and the round closes without that site, as a single aggregator's would.

Same interface as `aggregator.worker_core.WorkerCore` (`handle(messages, now) -> effects`,
`wake_at()`), so `aggregator.worker_service.WorkerService` drives it. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aggregator.round_events import Log
from aggregator.secure_aggregation.service_round import (
    SecureAggOptions,
    SecureCollection,
    SecureRound,
    SecureRoundResult,
)
from aggregator.worker_core import CUTOFF_S, WorkerTrust, from_coordinator
from fleet_protocol.errors import TopicError
from fleet_protocol.messages import GlobalModel, RoundAnnouncement
from fleet_protocol.partial_sum import PartialSum, encode_partial_sum
from fleet_protocol.publish import Publish
from fleet_protocol.secure_aggregation.fixed_point import flatten
from fleet_protocol.secure_aggregation.transport import is_phase_topic
from fleet_protocol.topics import parse_topic, partial_topic


@dataclass(frozen=True)
class SecureSiteConfig:
    """Who the site is, how many of its devices a masked round needs, the phases' settings."""

    fleet: str
    site_id: str
    quorum: int
    options: SecureAggOptions = field(default_factory=SecureAggOptions)
    cutoff_s: float = CUTOFF_S


class SecureSiteCore:
    """One masked round per announced round; its unmasked sum goes upstream once."""

    def __init__(self, config: SecureSiteConfig, trust: WorkerTrust) -> None:
        self.config, self.trust = config, trust
        self._announcement: RoundAnnouncement | None = None
        self._heads: dict[int, GlobalModel] = {}
        self._collection: SecureCollection | None = None
        self._done_rounds: set[int] = set()
        self._now = 0.0
        self._out: list[Publish | Log] = []
        self.counts: dict[str, int] = {}

    @property
    def round_id(self) -> int | None:
        """The round whose phases run now."""
        return None if self._collection is None else self._collection.round.round_id

    def wake_at(self) -> float | None:
        """The running phase's deadline (it advances or fails then, messages or not)."""
        return None if self._collection is None else self._collection.wake_at()

    def handle(self, messages: list[tuple[str, bytes]], now: float) -> list[Publish | Log]:
        """Take a batch of messages (possibly none: time passed)."""
        self._now = now
        for topic, payload in messages:
            self._on_message(topic, payload)
        collection = self._collection
        if collection is not None:
            self._out.extend(collection.tick())
            if collection.done:
                self._finish(collection)
        effects, self._out = self._out, []
        return effects

    def _on_message(self, topic: str, payload: bytes) -> None:
        if is_phase_topic(topic):
            if self._collection is not None:
                self._out.extend(self._collection.handle(topic, payload))
            return
        try:
            kind = parse_topic(topic).kind
        except TopicError:
            return
        if kind == "round" and payload:
            message = from_coordinator(payload, RoundAnnouncement, self.trust, self.counts, "round")
            if isinstance(message, RoundAnnouncement):
                self._announcement = message
        elif kind == "model" and payload:
            head = from_coordinator(payload, GlobalModel, self.trust, self.counts, "model")
            if isinstance(head, GlobalModel):
                self._heads[head.model_version] = head
        self._begin_if_ready()

    def _begin_if_ready(self) -> None:
        announcement = self._announcement
        head = self._heads.get(announcement.model_version) if announcement else None
        if announcement is None or head is None or self._collection is not None:
            return
        if announcement.round_id in self._done_rounds or announcement.max_staleness is not None:
            return
        give_up = announcement.deadline_unix - self.config.cutoff_s
        if self._now >= give_up:
            return
        shapes = [tuple(w.shape) for w in head.weights]
        masked = SecureRound(self.config.fleet, announcement.round_id, announcement.model_version,
                             shapes, frozenset(), self.config.quorum, give_up)  # fmt: skip
        self._collection = SecureCollection.start(
            masked, self.config.options, self.trust.signing_key, self.trust.device_key,
            clock=lambda: self._now,
        )  # fmt: skip
        self._out.extend(self._collection.take_outgoing())
        threshold = self._collection.config.threshold
        self._out.append(Log(f"round {announcement.round_id}: secure aggregation with this"
                             f" site's devices (threshold {threshold})"))  # fmt: skip
        self._heads = {announcement.model_version: head}

    def _finish(self, collection: SecureCollection) -> None:
        round_ = collection.round
        self._collection = None
        self._done_rounds.add(round_.round_id)
        result = collection.result()
        if result.mean_delta is None:
            self._out.append(Log(f"round {round_.round_id}: secure aggregation failed"
                                 f" ({result.error}); no partial sum sent"))  # fmt: skip
            return
        partial = site_partial_sum(self.config.fleet, self.config.site_id, round_, result)
        payload = encode_partial_sum(partial, self.trust.signing_key)
        self._out.append(Publish(partial_topic(self.config.fleet, self.config.site_id), payload,
                                 retain=True))  # fmt: skip
        self._out.append(Log(f"round {round_.round_id}: secure sum of {partial.count} devices"
                             f" ({len(result.dropped)} dropped) sent upstream"))  # fmt: skip


def site_partial_sum(fleet: str, site_id: str, round_: SecureRound,
                     result: SecureRoundResult) -> PartialSum:  # fmt: skip
    """The masked round's survivors as one partial sum: Σ nᵢ·Δᵢ = mean · Σ nᵢ."""
    assert result.mean_delta is not None
    weighted = flatten(result.mean_delta).astype(np.float64) * result.num_examples
    return PartialSum(fleet, round_.round_id, round_.base_version, site_id, 1, weighted,
                      result.num_examples, tuple(sorted(result.survivors)),
                      tuple(round_.shapes))  # fmt: skip
