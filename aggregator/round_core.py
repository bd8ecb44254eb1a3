"""The aggregator's round logic as a pure state machine: `handle(event, now) -> effects`.

It opens and announces rounds, closes them at quorum or deadline and publishes new heads, but
only by returning effects; `aggregator.service` carries them out in order. The order is the
crash-safety contract: an accepted update is stored (with the accumulator that includes it)
before its ack is published; a new version is stored before it is published. What each message
does is `aggregator.round_intake`'s; the state both share is `aggregator.core_state`'s.
Decisions are delegated to pure helpers: `update_validation` (accept or reject), the strategy
(how deltas fold), the secure-aggregation coordinator (phases of a masked round).
"""

from __future__ import annotations

from dataclasses import replace

from aggregator.collecting_round import CollectingRound
from aggregator.model_patches import smaller_patch
from aggregator.partial_sums import PartialSumBook, fold_partial_sums
from aggregator.promotion import Verdict, promotion_verdict
from aggregator.round_events import (
    Effect,
    Event,
    Log,
    MessageArrived,
    RoundClosed,
    RoundMetrics,
    RoundStatus,
    StoreCandidate,
    StoreClosedRound,
    StoreOpenedRound,
    StorePrivacy,
    StoreRejection,
    StoreVersion,
)
from aggregator.round_intake import RoundIntake
from aggregator.round_memory import OpenRoundMemory, StoredVersion
from aggregator.round_recovery import roll_back
from aggregator.secure_aggregation.service_round import SecureCollection, SecureRound
from aggregator.state_store import AcceptedUpdate, RoundRecord
from aggregator.update_bounds import bounds_for_head, candidate_violation, update_violation
from fleet_protocol.errors import FederationError
from fleet_protocol.messages import GlobalModel, RoundAnnouncement
from fleet_protocol.topics import model_topic, patch_topic, round_topic
from fleet_protocol.types import Weights
from fleet_protocol.wire import message_sha256


class AggregatorCore(RoundIntake):
    """Runs `config.rounds` rounds (counting those already closed in the remembered state)."""

    # entry points ------------------------------------------------------------------------------
    def start(self, now: float) -> list[Effect]:
        """Make sure version 0 exists, republish the latest head, open or resume a round."""
        self._now = now
        if self.memory.refused_versions:
            self._roll_back()
        elif self.memory.latest is None:
            sha = message_sha256(self._initial_weights)
            self.memory.latest = StoredVersion(0, self._initial_weights, sha)
            self.memory.version_sha256[0] = sha
            self._emit(StoreVersion(0, self._initial_weights, sha))
        assert self.memory.latest is not None
        for effect in self._model_effects(self.memory.latest):
            self._emit(effect)
        self._advance()
        return self._drain()

    def _roll_back(self) -> None:
        """The state file holds heads that may not be served (`aggregator.round_recovery`)."""
        plan = roll_back(self.memory, self._initial_weights, self._now)
        self._emit(*plan.effects)
        for version in plan.cleared_versions:
            self._publish(model_topic(self.config.fleet, version), b"", retain=True)

    def handle(self, event: Event, now: float) -> list[Effect]:
        """React to one message or to time passing."""
        self._now = now
        if isinstance(event, MessageArrived):
            self._on_message(event.topic, event.payload)
        if self._gate.due(now) or not isinstance(event, MessageArrived):
            self._flush_quiet_drops()
        if self._round is not None and self._round.secure is not None:
            self._step_secure(self._round, self._round.secure)
        elif self._round is not None and self._should_close(self._round):
            self._close(self._round)
        return self._drain()

    def wake_at(self) -> float | None:
        """When the core next needs `TimePassed` even if no message comes (None: never)."""
        if self._round is None:
            return None
        secure = self._round.secure
        return min(self._round.deadline, secure.wake_at()) if secure else self._round.deadline

    @property
    def waiting_for(self) -> set[str]:
        """Devices known to be online that have not sent this round's update yet."""
        return (
            set() if self._round is None else self._awaited(self._round) - self._round.participants
        )

    def _awaited(self, round_: CollectingRound, devices: set[str] | None = None) -> set[str]:
        """Online devices (or these) that may send this round: drawn, with budget left."""
        devices = self.online if devices is None else devices
        if self.privacy is None:
            return devices
        return self.privacy.may_send(self.config.fleet, round_.round_id, devices)

    def waiting_line(self, now: float) -> str | None:
        """The operator's view of the open round: who it waits for, quorum, deadline."""
        round_ = self._round
        if round_ is None or not self.waiting_for:
            return None
        names = ", ".join(sorted(self.waiting_for))
        have, quorum = len(round_.participants), round_.memory.record.quorum
        return (f"round {round_.round_id}: waiting for {names} ({have}/{quorum} for quorum,"
                f" deadline in {max(0.0, round_.deadline - now):.0f}s)")  # fmt: skip

    # rounds --------------------------------------------------------------------------------------
    def _advance(self) -> None:
        if self.memory.closed_rounds >= self.config.rounds:
            self._announce_finished()
            self.finished = True
            return
        stored = self.memory.open_round
        self._round = self._resume(stored) if stored else self._open_new()
        if self._coordination is not None:
            base = self._round.base
            shapes = [tuple(w.shape) for w in base.weights]
            self._round.partials = PartialSumBook(self.config.fleet, self._round.round_id,
                                                  base.version, shapes)  # fmt: skip
        self._announce(self._round)
        if self._secure_agg is not None:
            self._round.secure = SecureCollection.start(
                self._secure_collection_round(self._round), self._secure_agg,
                self._trust.signing_key, self._trust.verify_key, clock=lambda: self._now,
            )  # fmt: skip
            self._publish_phase(self._round.secure.take_outgoing())

    def _resume(self, stored: OpenRoundMemory) -> CollectingRound:
        base = self.memory.open_round_base
        assert base is not None
        self.strategy.begin_round(base.weights)
        self.strategy.state_from_arrays(stored.strategy_state)
        self._carry_restored = True
        record = stored.record
        deadline = max(record.deadline_unix, self._now + self.config.deadline_s)
        self._emit(Log(f"round {record.round_id}: resumed with {len(stored.accepted)} accepted"
                       " updates"))  # fmt: skip
        bounds = bounds_for_head(base.weights, self.config.bounds)
        return CollectingRound(
            stored, base, deadline, bounds, set(self.online), set(stored.accepted)
        )

    def _open_new(self) -> CollectingRound:
        latest = self.memory.latest
        assert latest is not None
        carry = self.memory.strategy_carry
        if carry is not None and not self._carry_restored:
            self.strategy.state_from_arrays(carry)  # server optimiser moments across a restart
        self._carry_restored = True
        self.strategy.begin_round(latest.weights)
        last = self.memory.last_round
        round_id = (last.round_id if last else 0) + 1
        deadline = self._now + self.config.deadline_s
        record = RoundRecord(round_id, latest.version, self._now, deadline,
                             self.config.min_clients, "open", None, None, None)  # fmt: skip
        memory = OpenRoundMemory(record, strategy_state=self.strategy.state_to_arrays())
        self.memory.open_round, self.memory.open_round_base = memory, latest
        self.memory.last_round = record
        self._emit(StoreOpenedRound(record, memory.strategy_state),
                   Log(f"round {round_id}: open on version {latest.version}"))  # fmt: skip
        bounds = bounds_for_head(latest.weights, self.config.bounds)
        return CollectingRound(memory, latest, deadline, bounds, set(self.online))

    def _announce(self, round_: CollectingRound) -> None:
        announcement = self._announcement(round_)
        self._publish(round_topic(self.config.fleet), self._encode(announcement), retain=True)

    def _announcement(self, round_: CollectingRound) -> RoundAnnouncement:
        record = round_.memory.record
        announcement = RoundAnnouncement(
            fleet=self.config.fleet,
            round_id=record.round_id,
            model_version=round_.base.version,
            model_sha256=round_.base.sha256,
            deadline_unix=round_.deadline,
            quorum=record.quorum,
            config=self.strategy.configure_fit(self.config.fit),
            codec=self._encoding.codec,
            encoding=self._encoding.announced,
        )
        if self.privacy is not None:  # who is drawn this round
            announcement = self.privacy.sampled_announcement(announcement)
        return announcement

    def _announce_finished(self) -> None:
        """Re-announce the last round with its deadline passed, so no device trains for it."""
        last = self.memory.last_round
        latest = self.memory.latest
        if last is None or latest is None:
            return
        sha = self.memory.version_sha256[last.base_version]
        announcement = RoundAnnouncement(
            self.config.fleet, last.round_id, last.base_version, sha,
            min(self._now, last.deadline_unix), last.quorum,
            self.strategy.configure_fit(self.config.fit), self._encoding.codec,
            encoding=self._encoding.announced,
        )  # fmt: skip
        self._publish(round_topic(self.config.fleet), self._encode(announcement), retain=True)

    def _should_close(self, round_: CollectingRound) -> bool:
        if self._now >= round_.deadline:
            return True
        if round_.partials is not None and round_.partials.overlaps():
            return False  # a worker still holds a device another holds: wait for its re-send
        everyone_in = self._awaited(round_) <= round_.participants  # online and may send
        return len(round_.participants) >= round_.memory.record.quorum and everyone_in

    # secure aggregation --------------------------------------------------------------------------
    def _secure_collection_round(self, round_: CollectingRound) -> SecureRound:
        record = round_.memory.record
        return SecureRound(self.config.fleet, record.round_id, record.base_version,
                           [tuple(w.shape) for w in round_.base.weights],
                           frozenset(self.online), record.quorum,
                           give_up_unix=max(self._now + 1.0, round_.deadline))  # fmt: skip

    def _step_secure(self, round_: CollectingRound, secure: SecureCollection) -> None:
        self._publish_phase(secure.tick())
        if not secure.done:
            return
        result = secure.result()
        self._count_traffic(round_.round_id, result.bytes_in, result.bytes_out)
        if result.rejected:
            self._emit(StoreRejection(round_.round_id, "secure_agg"))
        violation = None
        if result.mean_delta is not None:
            violation = update_violation(result.mean_delta, round_.bounds)
        if result.mean_delta is None or violation is not None:
            why = result.error if violation is None else violation
            self._emit(Log(f"round {round_.round_id}: secure aggregation failed: {why}"))
        else:
            self.strategy.accumulate(result.mean_delta, result.num_examples, result.device_id)
            row = AcceptedUpdate(round_.round_id, result.device_id, 0, result.num_examples, 0, "")
            self._record_accepted(round_, row, set(result.survivors))
            self._emit(Log(f"round {round_.round_id}: secure sum of {len(result.survivors)}"
                           f" devices ({len(result.dropped)} dropped)"))  # fmt: skip
        self._close(round_)

    # closing -------------------------------------------------------------------------------------
    def _close(self, round_: CollectingRound) -> None:
        self._flush_quiet_drops()
        if round_.partials is not None:
            self._emit(*fold_partial_sums(self.strategy, round_.partials, round_.round_id))
            round_.participants = set(round_.memory.accepted) | round_.partials.participants
        record = round_.memory.record
        quorum_met = len(round_.participants) >= record.quorum
        weights = self._finish(round_) if quorum_met else None
        verdict = self._promotion(round_, weights)
        stored = (
            None if weights is None or verdict.held_back else self._new_version(round_, weights)
        )
        version = round_.base.version if stored is None else stored.version
        status: RoundStatus = "below_quorum"
        if quorum_met:
            status = "aggregated" if stored is not None else "aggregation_failed"
        if verdict.held_back and weights is not None:
            status = "held_back"
            sha = message_sha256(weights)
            self._emit(StoreCandidate(record.round_id, weights, sha, verdict.candidate or 0.0))
        metrics = self._metrics(round_, version, status, verdict)
        carry = None if stored is None else self.strategy.state_to_arrays()
        self._charge_privacy(round_, stored)
        model_effects = [] if stored is None else self._model_effects(stored)  # with its epsilon
        self._emit(StoreClosedRound(record.round_id, metrics, self._now, stored, carry),
                   *model_effects,
                   Log(f"round {record.round_id}: closed -> version {version} "
                       f"{metrics.to_dict()}"),
                   RoundClosed(metrics))  # fmt: skip
        if stored is not None:
            self.memory.latest = stored
            self.memory.version_sha256[stored.version] = stored.sha256
            self.memory.strategy_carry = carry
        self.memory.best_accuracy = verdict.best
        self.memory.closed_rounds += 1
        self.memory.last_round = replace(record, status="closed", closed_unix=self._now)
        self.memory.open_round = self.memory.open_round_base = None
        self._round = None
        self._advance()

    def _charge_privacy(self, round_: CollectingRound, stored: StoredVersion | None) -> None:
        """A released round spends the privacy of the devices that could be in it."""
        if self.privacy is None or stored is None:
            return
        population = self.online | round_.seen_online | round_.participants
        devices, stamp = self.privacy.close_round(population, round_.participants, stored.version)
        self._emit(StorePrivacy(tuple(devices), stamp))

    def _promotion(self, round_: CollectingRound, weights: Weights | None) -> Verdict:
        """Score the new aggregate (and the head it would replace); hold it back if worse."""
        if self._evaluate is None:
            return Verdict(best=self.memory.best_accuracy)
        best, margin = self.memory.best_accuracy, self.config.promotion_margin
        return promotion_verdict(self._evaluate, round_.base.weights, weights, best, margin)

    def _new_version(self, round_: CollectingRound, weights: Weights) -> StoredVersion:
        latest = self.memory.latest
        version = 0 if latest is None else latest.version + 1
        sha = message_sha256(weights)
        return StoredVersion(version, weights, sha, round_.base.version, round_.round_id)

    def _finish(self, round_: CollectingRound) -> Weights | None:
        """The strategy's new head, or None when it cannot aggregate or the head is refused.

        A refused candidate (non-finite, absurd, or further from the base than one bounded
        update) is never stored or published; the strategy's state (server optimiser moments)
        is put back as it was, and the refusal is counted under `head_<reason>`.
        """
        before = self.strategy.state_to_arrays()
        try:
            candidate = self.strategy.finish_round(round_.base.weights)
        except FederationError as exc:  # e.g. Krum with too few updates: keep the old head
            self._emit(Log(f"round {round_.round_id}: aggregation failed ({exc.reason}): {exc}"))
            return None
        reason = candidate_violation(candidate, round_.base.weights, round_.bounds)
        if reason is None:
            return candidate
        self.strategy.state_from_arrays(before)
        counted = f"head_{reason}"
        round_.count_rejected(counted)
        self._emit(StoreRejection(round_.round_id, counted),
                   Log(f"round {round_.round_id}: new head refused ({reason}); keeping version "
                       f"{round_.base.version}"))  # fmt: skip
        return None

    def _metrics(
        self, round_: CollectingRound, version: int, status: RoundStatus, verdict: Verdict
    ) -> RoundMetrics:
        memory = round_.memory
        expected = self._awaited(round_, self.online | round_.seen_online) | round_.participants
        return RoundMetrics(
            round=memory.record.round_id,
            base_version=round_.base.version,
            model_version=version,
            status=status,
            participants=len(round_.participants),
            num_examples=sum(u.num_examples for u in memory.accepted.values())
            + (round_.partials.total_weight if round_.partials else 0),
            dropped=len(expected - round_.participants),
            rejected=dict(sorted(memory.rejected.items())),
            resent=round_.resent,
            round_time_s=round(self._now - memory.record.opened_unix, 3),
            accuracy=verdict.published,
            candidate_accuracy=verdict.candidate if verdict.held_back else None,
            held_back=verdict.held_back,
            best_accuracy=verdict.best,
            base_accuracy=verdict.base,
            bytes_in=memory.bytes_in,
            bytes_out=memory.bytes_out,
            extra=dict(self.strategy.round_report()),
        )

    # publishing ----------------------------------------------------------------------------------
    def _model_effects(self, stored: StoredVersion) -> list[Effect]:
        """Publish a version (retained) and clear the one that falls out of the kept window."""
        before, self._out = self._out, []
        stamp = self.privacy.versions.get(stored.version) if self.privacy else None
        model = GlobalModel(self.config.fleet, stored.version, stored.weights, stored.parent,
                            stored.round_id or 0, stamp.epsilon if stamp else None,
                            stamp.delta if stamp else None)  # fmt: skip
        full = self._encode(model)
        self._publish(model_topic(self.config.fleet, stored.version), full, retain=True)
        patch = smaller_patch(model, self.memory.latest, stored.sha256, len(full), self._encode)
        if patch is not None:  # devices holding the parent download this instead
            self._publish(patch_topic(self.config.fleet, stored.version), patch, retain=True)
        stale = stored.version - self.config.keep_model_versions
        if stale >= 0:
            self._publish(model_topic(self.config.fleet, stale), b"", retain=True)
            self._publish(patch_topic(self.config.fleet, stale), b"", retain=True)
        effects, self._out = self._out, before
        return effects
