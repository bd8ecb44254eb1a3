"""The aggregator's I/O shell: MQTT messages and time in, the round core's effects carried out.

Decisions live in `aggregator.round_core`, or `aggregator.async_core` for buffered asynchronous
rounds (both pure, same `handle(event, now) -> effects`); this module only turns link events
into core events and executes the effects in the order the core returns them, which is what
makes a crash lose nothing: an accepted update is committed to SQLite before its ack is
published, and a new version before it is published. A restart with the same state file reads
the core's memory back from the store (`read_snapshot`) and resumes the open round. Counters
(bytes in and out, rejections) are written in one transaction at most every `COUNTER_FLUSH_S`
and before any other write: a flood of refused messages costs one fsync a second, not two per
message (a crash loses at most that second of counts, never an acknowledged update).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aggregator.async_core import AsyncAggregatorCore, AsyncSettings
from aggregator.core_config import AggregatorConfig, Evaluate, Strategy, Trust
from aggregator.partial_sums import Coordination
from aggregator.privacy_ledger import PrivacyLedger, PrivacyPlan
from aggregator.round_core import AggregatorCore
from aggregator.round_events import (
    Effect,
    Log,
    MessageArrived,
    RoundClosed,
    StoreAcceptedUpdate,
    StoreCandidate,
    StoreClosedRound,
    StoreDeviceStatus,
    StoreOpenedRound,
    StorePrivacy,
    StoreRejection,
    StoreTraffic,
    StoreVersion,
    TimePassed,
)
from aggregator.round_memory import read_snapshot
from aggregator.secure_aggregation.service_round import SecureAggOptions
from aggregator.serving_heap import long_lived_objects_frozen
from aggregator.state_store import StateStore
from fleet_protocol.mqtt_link import LinkEvent, MqttPublishTimeoutError, topic_kind
from fleet_protocol.publish import Publish
from fleet_protocol.topics import subscription_topic
from fleet_protocol.types import Weights
from fleet_protocol.wire import VerifyKey

POLL_S = 0.2
COUNTER_FLUSH_S = 1.0  # counters (traffic, rejections) reach the state file at least this often
WAITING_LOG_S = 30.0  # repeat "waiting for ..." this often while nothing changes


class Link(Protocol):
    """What the service needs of `fleet_protocol.mqtt_link.MqttLink`."""

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, wait: bool = True
    ) -> None: ...
    def next_event(self, timeout_s: float) -> LinkEvent | None: ...


def link_subscriptions(fleet: str, *, coordinator: bool = False) -> tuple[str, ...]:
    """The topics the aggregator follows (a coordinator takes partial sums, not updates)."""
    if coordinator:
        return (subscription_topic(fleet, "partial"), subscription_topic(fleet, "status"))
    return (subscription_topic(fleet, "update"), subscription_topic(fleet, "status"))


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
        coordination: Coordination | None = None,
        privacy: PrivacyPlan | None = None,
        async_settings: AsyncSettings | None = None,
    ) -> None:
        self.link, self.store, self._clock = link, store, clock
        self._on_metrics, self._log = on_metrics, log
        ledger = None if privacy is None else PrivacyLedger(
            privacy, store.privacy.devices(), store.privacy.versions())  # fmt: skip
        trust, memory = Trust(verify_key, signing_key), read_snapshot(store)
        if async_settings is not None and (secure_agg or coordination or privacy):
            raise ValueError("asynchronous rounds take no secure aggregation, workers or DP")
        self.core = (
            AsyncAggregatorCore(config, strategy, memory, initial_weights, async_settings,
                                trust=trust, evaluate=evaluate)
            if async_settings is not None
            else AggregatorCore(config, strategy, memory, initial_weights, trust=trust,
                                evaluate=evaluate, secure_agg=secure_agg,
                                coordination=coordination, privacy=ledger)
        )  # fmt: skip
        self._closed_here: list[dict[str, Any]] = []
        self._counters: list[StoreTraffic | StoreRejection | StoreDeviceStatus] = []
        self._counters_flushed = 0.0
        self._link_dropped = 0
        self._waiting: tuple[str | None, float] = (None, 0.0)  # last line logged, when

    def run(self) -> list[dict[str, Any]]:
        """Resume or start rounds until all are closed; the metrics of each closed here."""
        with long_lived_objects_frozen():
            return self._serve()

    def _serve(self) -> list[dict[str, Any]]:
        try:
            self._carry_out(self.core.start(self._clock()))
            while not self.core.finished:
                event = self.link.next_event(self._wait_s())
                now = self._clock()
                if event is not None and event.kind == "message":
                    message = MessageArrived(event.topic, event.payload)
                    self._carry_out(self.core.handle(message, now))
                else:
                    self._carry_out(self.core.handle(TimePassed(), now))
                if now - self._counters_flushed >= COUNTER_FLUSH_S:
                    self._flush_counters()
                self._log_waiting(now)
        finally:
            self._flush_counters()
        return self._closed_here

    def _count_link_drops(self) -> None:
        """Messages the link dropped because this loop fell behind: counted as `queue_full`."""
        dropped = sum(getattr(self.link, "dropped", {}).values())
        if dropped > self._link_dropped:
            round_id = self.core.open_round_id or 0
            self._counters.append(
                StoreRejection(round_id, "queue_full", dropped - self._link_dropped)
            )
            self._link_dropped = dropped

    def _flush_counters(self) -> None:
        """Write the pending counters in one transaction."""
        self._count_link_drops()
        self._counters_flushed = self._clock()
        if not self._counters:
            return
        counters, self._counters = self._counters, []
        with self.store.batch():
            for effect in counters:
                apply_to_store(self.store, effect, self._counters_flushed)

    def _log_waiting(self, now: float) -> None:
        """Say which devices the open round waits for: when that changes, then now and again."""
        line = self.core.waiting_line(now)
        last_line, logged_at = self._waiting
        if line is None:
            self._waiting = (None, 0.0)
            return
        same = last_line is not None and line.split(" (")[0] == last_line.split(" (")[0]
        if not same or now - logged_at >= WAITING_LOG_S:
            self._log(line)
            self._waiting = (line, now)

    def _wait_s(self) -> float:
        wake = self.core.wake_at()
        return POLL_S if wake is None else min(POLL_S, max(0.0, wake - self._clock()))

    def _carry_out(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Publish):
                self._publish(effect)
            elif isinstance(effect, Log):
                self._log(effect.line)
            elif isinstance(effect, RoundClosed):
                self._report(effect.metrics.to_dict())
            elif isinstance(effect, StoreTraffic | StoreRejection | StoreDeviceStatus):
                self._counters.append(effect)  # informational: batched, one commit a second
            else:
                self._flush_counters()  # keep the store's order: counters before what follows
                apply_to_store(self.store, effect, self._clock())

    def _report(self, metrics: dict[str, Any]) -> None:
        if self._on_metrics is not None:
            self._on_metrics(metrics)  # may raise: a spent privacy budget stops the service
        self._closed_here.append(metrics)

    def _publish(self, effect: Publish) -> None:
        wait = topic_kind(effect.topic) != "ack"  # acks follow their commit; no need to block
        try:
            self.link.publish(effect.topic, effect.payload, retain=effect.retain, wait=wait)
        except MqttPublishTimeoutError as exc:  # paho keeps QoS 1 queued until it reconnects
            self._log(f"publish to {effect.topic} pending: {exc}")


def apply_to_store(store: StateStore, effect: Effect, now: float) -> None:
    """Carry out one of the core's storage effects (others are the shell's business)."""
    if isinstance(effect, StoreTraffic):
        store.add_traffic(effect.round_id, effect.bytes_in, effect.bytes_out)
    elif isinstance(effect, StoreAcceptedUpdate):
        store.accept_update(effect.update, effect.strategy_state, effect.received_unix)
    elif isinstance(effect, StoreRejection):
        store.count_rejection(effect.round_id, effect.reason, effect.count)
        if effect.device_id:
            store.count_device_rejection(effect.device_id, effect.reason)
    elif isinstance(effect, StoreDeviceStatus):
        store.record_device(effect.device)
    elif isinstance(effect, StoreCandidate):
        store.add_candidate(effect.round_id, effect.weights, effect.sha256, effect.accuracy)
    elif isinstance(effect, StoreOpenedRound):
        new = effect.record
        store.open_round(new.round_id, new.base_version, new.opened_unix, new.deadline_unix,
                         new.quorum, effect.strategy_state)  # fmt: skip
    elif isinstance(effect, StoreClosedRound):
        _store_closed(store, effect)
    elif isinstance(effect, StorePrivacy):
        store.privacy.save(list(effect.devices), effect.version, now)
    elif isinstance(effect, StoreVersion):
        store.add_version(effect.version, effect.weights, effect.parent, None, effect.sha256,
                          now)  # fmt: skip


def _store_closed(store: StateStore, effect: StoreClosedRound) -> None:
    metrics = effect.metrics.to_dict()
    version = effect.version
    if version is None:
        store.close_round_without_version(effect.round_id, metrics, effect.closed_unix)
        return
    store.close_round(effect.round_id, version.version, version.weights, version.sha256,
                      metrics, effect.closed_unix, effect.carry)  # fmt: skip
