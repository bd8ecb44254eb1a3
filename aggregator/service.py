"""The aggregator: announces rounds over MQTT, collects and folds updates, publishes new heads.

This module owns the network and the loop; decisions live elsewhere: `update_validation`
(accept or reject, with a reason), `strategies` (how deltas fold into a new head), `state_store`
(what survives a crash). Order of effects for every accepted update: fold into the strategy,
commit update row + accumulator in one SQLite transaction, THEN publish the ack. A restart with
the same state file resumes the open round from the committed accumulator.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aggregator.secure_aggregation.service_round import (
    SECURE_AGGREGATE_ID,
    SecureAggOptions,
    SecureRound,
    run_secure_round,
)
from aggregator.state_store import AcceptedUpdate, RoundRecord, StateStore
from aggregator.update_validation import (
    DeviceHistory,
    OpenRound,
    check_update,
    is_resend_of_accepted,
    reason_for_error,
)
from fleet_protocol.chunking import ChunkAssembler, is_chunk
from fleet_protocol.errors import FederationError, TopicError
from fleet_protocol.messages import (
    DeviceStatus,
    FitConfig,
    GlobalModel,
    ModelUpdate,
    RoundAnnouncement,
    UpdateAck,
)
from fleet_protocol.mqtt_link import LinkEvent, MqttLinkError, MqttPublishTimeoutError
from fleet_protocol.topics import (
    ack_topic,
    model_topic,
    parse_topic,
    round_topic,
    subscription_topic,
)
from fleet_protocol.types import ArrayState, Weights
from fleet_protocol.wire import VerifyKey, decode_message, encode_message, message_sha256

POLL_S = 0.2
MAX_UPDATE_BYTES = 8 * 1024 * 1024
Evaluate = Callable[[Weights], float]


class Strategy(Protocol):
    """What the service needs of a `aggregator.strategies` strategy."""

    def configure_fit(self, config: FitConfig) -> FitConfig: ...
    def begin_round(self, global_weights: Weights) -> None: ...
    def accumulate(self, delta: Weights, num_examples: int, device_id: str) -> None: ...
    def finish_round(self, global_weights: Weights) -> Weights: ...
    def state_to_arrays(self) -> ArrayState: ...
    def state_from_arrays(self, state: ArrayState) -> None: ...


class Link(Protocol):
    """What the service needs of `fleet_protocol.mqtt_link.MqttLink`."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None: ...
    def next_event(self, timeout_s: float) -> LinkEvent | None: ...


@dataclass(frozen=True)
class AggregatorConfig:
    """What the operator chose on the command line."""

    fleet: str
    rounds: int
    min_clients: int
    deadline_s: float
    codec: str = "int8"
    fit: FitConfig = field(default_factory=FitConfig)
    keep_model_versions: int = 2
    max_update_bytes: int = MAX_UPDATE_BYTES


def link_subscriptions(fleet: str) -> tuple[str, ...]:
    """The topics the aggregator follows."""
    return (subscription_topic(fleet, "update"), subscription_topic(fleet, "status"))


@dataclass(frozen=True)
class _Payload:
    """Identity of the received bytes (a resend has the same digest)."""

    sha256: str
    size: int


@dataclass
class _RoundState:
    """The open round in memory (everything here is re-derivable from the store)."""

    record: RoundRecord
    deadline: float
    started: float
    shapes: list[tuple[int, ...]]
    accepted_devices: set[str] = field(default_factory=set)
    seen_online: set[str] = field(default_factory=set)  # online at any time during the round
    resent: int = 0


class AggregatorService:
    """Runs `config.rounds` rounds (counting those already closed in the state file)."""

    def __init__(
        self,
        config: AggregatorConfig,
        link: Link,
        store: StateStore,
        strategy: Strategy,
        initial_weights: Weights,
        *,
        clock: Callable[[], float] = time.time,
        evaluate: Evaluate | None = None,
        verify_key: VerifyKey | None = None,
        on_metrics: Callable[[dict[str, Any]], None] | None = None,
        log: Callable[[str], None] = lambda line: None,
        signing_key: Ed25519PrivateKey | None = None,
        secure_agg: SecureAggOptions | None = None,
    ) -> None:
        self.config, self.link, self.store, self.strategy = config, link, store, strategy
        self._initial_weights = initial_weights
        self._clock, self._evaluate, self._verify_key = clock, evaluate, verify_key
        self._on_metrics, self._log = on_metrics, log
        self._signing_key = signing_key  # signs rounds, models, acks (devices verify them)
        self._secure_agg = secure_agg  # devices send masked updates; only their sum is seen
        self.online: set[str] = set()
        self._round: _RoundState | None = None
        self._carry_restored = False
        self._chunks = ChunkAssembler(max_message_bytes=config.max_update_bytes)

    # lifecycle
    def run(self) -> list[dict[str, Any]]:
        """Resume or start rounds until `config.rounds` are closed; metrics of each closed here."""
        self._bootstrap_version()
        closed_here = []
        while self._closed_rounds() < self.config.rounds:
            self._round = self._resume_or_open_round()
            self._announce(self._round)
            self._collect(self._round)
            closed_here.append(self._close(self._round))
            self._round = None
        self._announce_finished()
        return closed_here

    def _announce_finished(self) -> None:
        """Re-announce the last round with its deadline passed, so no device trains for it."""
        rounds = self.store.rounds()
        if not rounds:
            return
        last = rounds[-1]
        self._announce(_RoundState(last, min(self._clock(), last.deadline_unix), 0.0, []))

    def _closed_rounds(self) -> int:
        return sum(1 for r in self.store.rounds() if r.status == "closed")

    def _bootstrap_version(self) -> None:
        """Version 0 is the bundle's head; always (re)publish the latest version retained."""
        if self.store.latest_version() is None:
            sha = message_sha256(self._initial_weights)
            self.store.add_version(0, self._initial_weights, None, None, sha, self._clock())
        latest = self.store.latest_version()
        assert latest is not None
        self._publish_model(latest.version, latest.parent, latest.round_id or 0, 0)

    def _resume_or_open_round(self) -> _RoundState:
        now = self._clock()
        record = self.store.open_round_record()
        if record is None:
            record = self._open_new_round(now)
            deadline = record.deadline_unix
        else:
            base_weights = self.store.load_weights(record.base_version)
            self.strategy.begin_round(base_weights)
            self.strategy.state_from_arrays(self.store.strategy_state(record.round_id))
            deadline = max(record.deadline_unix, now + self.config.deadline_s)
            self._carry_restored = True
            count = self._accepted_count(record)
            self._log(f"round {record.round_id}: resumed with {count} accepted updates")
        accepted = {u.device_id for u in self.store.accepted_updates(record.round_id)}
        shapes = [tuple(w.shape) for w in self.store.load_weights(record.base_version)]
        return _RoundState(record, deadline, now, shapes, accepted, set(self.online))

    def _open_new_round(self, now: float) -> RoundRecord:
        latest = self.store.latest_version()
        assert latest is not None
        carry = self.store.strategy_carry()
        if carry is not None and not self._carry_restored:
            self.strategy.state_from_arrays(carry)  # server optimiser moments across a restart
        self._carry_restored = True
        self.strategy.begin_round(self.store.load_weights(latest.version))
        round_id = max((r.round_id for r in self.store.rounds()), default=0) + 1
        deadline = now + self.config.deadline_s
        self.store.open_round(
            round_id, latest.version, now, deadline, self.config.min_clients,
            self.strategy.state_to_arrays(),
        )  # fmt: skip
        self._log(f"round {round_id}: open on version {latest.version}")
        record = self.store.open_round_record()
        assert record is not None
        return record

    def _accepted_count(self, record: RoundRecord) -> int:
        return len(self.store.accepted_updates(record.round_id))

    # publishing
    def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        round_id = self._round.record.round_id if self._round else 0
        try:
            self.link.publish(topic, payload, retain=retain)
        except MqttPublishTimeoutError as exc:  # paho keeps QoS 1 queued until it reconnects
            self._log(f"publish to {topic} pending: {exc}")
        self.store.add_traffic(round_id, bytes_out=len(payload))

    def _announce(self, state: _RoundState) -> None:
        record = state.record
        announcement = RoundAnnouncement(
            fleet=self.config.fleet,
            round_id=record.round_id,
            model_version=record.base_version,
            model_sha256=self._version_sha(record.base_version),
            deadline_unix=state.deadline,
            quorum=record.quorum,
            config=self.strategy.configure_fit(self.config.fit),
            codec=self.config.codec,
        )
        payload = encode_message(announcement, signing_key=self._signing_key)
        self._publish(round_topic(self.config.fleet), payload, retain=True)

    def _version_sha(self, version: int) -> str:
        return next(v.sha256 for v in self.store.versions() if v.version == version)

    def _publish_model(self, version: int, parent: int | None, round_id: int, keep: int) -> None:
        weights = self.store.load_weights(version)
        model = GlobalModel(self.config.fleet, version, weights, parent, round_id)
        payload = encode_message(model, signing_key=self._signing_key)
        self._publish(model_topic(self.config.fleet, version), payload, retain=True)
        stale = version - max(keep, self.config.keep_model_versions)
        if stale >= 0:
            self._publish(model_topic(self.config.fleet, stale), b"", retain=True)

    def _ack(self, device_id: str, update: ModelUpdate | None, accepted: bool, reason: str) -> None:
        round_id = update.round_id if update else 0
        sequence = update.sequence if update else 0
        ack = UpdateAck(self.config.fleet, round_id, device_id, sequence, accepted, reason)
        try:
            payload = encode_message(ack, signing_key=self._signing_key)
            self._publish(ack_topic(self.config.fleet, device_id), payload)
        except (MqttLinkError, TopicError) as exc:
            self._log(f"ack to {device_id} not delivered: {exc}")  # the device resends

    # collecting
    def _collect(self, state: _RoundState) -> None:
        if self._secure_agg is not None:
            self._collect_secure(state, self._secure_agg)
            return
        while not self._should_close(state):
            event = self.link.next_event(POLL_S)
            if event is not None and event.kind == "message":
                self._handle_message(event.topic, event.payload)

    def _collect_secure(self, state: _RoundState, options: SecureAggOptions) -> None:
        """Secure aggregation phases; fold the survivors' mean delta in as one update."""
        record = state.record
        round_ = SecureRound(self.config.fleet, record.round_id, record.base_version,
                             state.shapes, frozenset(self.online), record.quorum)  # fmt: skip
        result = run_secure_round(
            self.link, round_, options, signing_key=self._signing_key,
            verify_device=self._verify_key, timeout_s=max(1.0, state.deadline - self._clock()),
            on_other=lambda event: self._handle_status_event(event),
        )  # fmt: skip
        self.store.add_traffic(record.round_id, result.bytes_in, result.bytes_out)
        if result.rejected:
            self.store.count_rejection(record.round_id, "secure_agg")
        if result.mean_delta is None:
            self._log(f"round {record.round_id}: secure aggregation failed: {result.error}")
            return
        self.strategy.accumulate(result.mean_delta, result.num_examples, SECURE_AGGREGATE_ID)
        row = AcceptedUpdate(record.round_id, SECURE_AGGREGATE_ID, 0, result.num_examples, 0, "")
        self.store.accept_update(row, self.strategy.state_to_arrays(), self._clock())
        state.accepted_devices.update(result.survivors)
        self._log(f"round {record.round_id}: secure sum of {len(result.survivors)} devices"
                  f" ({len(result.dropped)} dropped)")  # fmt: skip

    def _handle_status_event(self, event: LinkEvent) -> None:
        if event.kind == "message" and "/status/" in event.topic:
            self._handle_message(event.topic, event.payload)

    def _should_close(self, state: _RoundState) -> bool:
        accepted = len(state.accepted_devices)
        if self._clock() >= state.deadline:
            return True
        everyone_in = self.online <= state.accepted_devices  # devices we know are online
        return accepted >= state.record.quorum and everyone_in

    def _handle_message(self, topic: str, payload: bytes) -> None:
        try:
            parsed = parse_topic(topic)
        except TopicError:
            return
        if parsed.kind == "status" and parsed.arg:
            self._handle_status(parsed.arg, payload)
        elif parsed.kind == "update" and parsed.arg:
            self._handle_update(parsed.arg, payload)

    def _handle_status(self, device_id: str, payload: bytes) -> None:
        try:
            status = decode_message(payload, expected_type=DeviceStatus)
        except FederationError:
            self.online.discard(device_id)
            return
        if isinstance(status, DeviceStatus) and status.online and status.device_id == device_id:
            self.online.add(device_id)
            if self._round is not None:
                self._round.seen_online.add(device_id)
        else:
            self.online.discard(device_id)

    def _handle_update(self, device_id: str, payload: bytes) -> None:
        state = self._round
        assert state is not None
        self.store.add_traffic(state.record.round_id, bytes_in=len(payload))
        if is_chunk(payload):
            try:
                whole = self._chunks.feed(payload, source=device_id)
            except FederationError as exc:
                self._reject(device_id, None, reason_for_error(exc), str(exc))
                return
            if whole is None:
                return  # more chunks to come
            payload = whole
        try:
            message = decode_message(
                payload,
                expected_type=ModelUpdate,
                expected_shapes=state.shapes,
                max_bytes=self.config.max_update_bytes,
                verify_key=self._verify_key,
            )
        except FederationError as exc:
            self._reject(device_id, None, reason_for_error(exc), str(exc))
            return
        assert isinstance(message, ModelUpdate)
        digest = hashlib.sha256(payload).hexdigest()
        self._consider_update(state, device_id, message, _Payload(digest, len(payload)))

    def _consider_update(
        self, state: _RoundState, device_id: str, update: ModelUpdate, payload: _Payload
    ) -> None:
        round_id = state.record.round_id
        stored = self.store.find_update(round_id, update.device_id)
        history = DeviceHistory(
            stored.sequence if stored else None,
            stored.payload_sha256 if stored else None,
            self.store.last_sequence(update.device_id),
        )
        opened = OpenRound(self.config.fleet, round_id, state.record.base_version)
        reason = check_update(update, device_id, opened, history)
        if reason == "duplicate" and is_resend_of_accepted(history, payload.sha256):
            state.resent += 1
            self._ack(device_id, update, True, "already stored")
            return
        if reason is not None:
            self._reject(device_id, update, reason, f"from {device_id}")
            return
        self._accept(state, update, payload)

    def _accept(self, state: _RoundState, update: ModelUpdate, payload: _Payload) -> None:
        round_id = state.record.round_id
        try:
            self.strategy.accumulate(update.delta, update.num_examples, update.device_id)
        except FederationError as exc:
            self.strategy.state_from_arrays(self.store.strategy_state(round_id))
            self._reject(update.device_id, update, reason_for_error(exc), str(exc))
            return
        row = AcceptedUpdate(
            round_id, update.device_id, update.sequence, update.num_examples,
            payload.size, payload.sha256,
        )  # fmt: skip
        self.store.accept_update(row, self.strategy.state_to_arrays(), self._clock())
        state.accepted_devices.add(update.device_id)
        self._log(f"round {round_id}: accepted {update.device_id} ({update.num_examples} ex)")
        self._ack(update.device_id, update, True, "")

    def _reject(self, device_id: str, update: ModelUpdate | None, reason: str, why: str) -> None:
        round_id = self._round.record.round_id if self._round else 0
        self.store.count_rejection(round_id, reason)
        self._log(f"round {round_id}: rejected update ({reason}): {why}")
        self._ack(device_id, update, False, reason)

    # closing
    def _close(self, state: _RoundState) -> dict[str, Any]:
        record, now = state.record, self._clock()
        participants = len(state.accepted_devices)
        quorum_met = participants >= record.quorum
        version = record.base_version
        weights = None
        if quorum_met:
            weights = self._finish(record)
            version = self._next_version() if weights is not None else version
        metrics = self._round_metrics(state, version, quorum_met, now)
        if quorum_met and weights is None:
            metrics["status"] = "aggregation_failed"
        metrics["accuracy"] = self._evaluate_version(weights, version)
        if weights is not None:
            sha = message_sha256(weights)
            carry = self.strategy.state_to_arrays()
            self.store.close_round(record.round_id, version, weights, sha, metrics, now, carry)
            self._publish_model(version, record.base_version, record.round_id, 0)
        else:
            self.store.close_round_without_version(record.round_id, metrics, now)
        metrics["bytes_in"], metrics["bytes_out"] = self.store.traffic(record.round_id)
        self.store.update_round_metrics(record.round_id, metrics)
        self._log(f"round {record.round_id}: closed -> version {version} {metrics}")
        if self._on_metrics is not None:
            self._on_metrics(metrics)
        return metrics

    def _finish(self, record: RoundRecord) -> Weights | None:
        """The strategy's new head, or None when it cannot aggregate these updates."""
        try:
            return self.strategy.finish_round(self.store.load_weights(record.base_version))
        except FederationError as exc:  # e.g. Krum with too few updates: keep the old head
            self._log(f"round {record.round_id}: aggregation failed ({exc.reason}): {exc}")
            return None

    def _next_version(self) -> int:
        latest = self.store.latest_version()
        return 0 if latest is None else latest.version + 1

    def _evaluate_version(self, weights: Weights | None, version: int) -> float | None:
        if self._evaluate is None:
            return None
        return float(self._evaluate(weights or self.store.load_weights(version)))

    def _round_metrics(
        self, state: _RoundState, version: int, quorum_met: bool, now: float
    ) -> dict[str, Any]:
        record = state.record
        updates = self.store.accepted_updates(record.round_id)
        expected = self.online | state.seen_online | state.accepted_devices
        return {
            "round": record.round_id,
            "base_version": record.base_version,
            "model_version": version,
            "status": "aggregated" if quorum_met else "below_quorum",
            "participants": len(state.accepted_devices),
            "num_examples": sum(u.num_examples for u in updates),
            "dropped": len(expected - state.accepted_devices),
            "rejected": self.store.rejections(record.round_id),
            "resent": state.resent,
            "round_time_s": round(now - record.opened_unix, 3),
        }
