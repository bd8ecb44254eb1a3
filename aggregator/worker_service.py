"""An aggregator worker's I/O shell: drain a batch of link events, hand it to the core, obey.

It follows the coordinator's `round` and `model/+` (retained), the other workers' `partial/+`,
and the fleet's updates through an MQTT 5 shared subscription (`$share/{group}/...`), so the
broker hands each update to one worker of the group (on NATS, which has none, a NATS queue group
puts them on the same link queue: `aggregator.nats_queue`). Whatever is queued is taken as one batch
(at most `MAX_BATCH`): the core's `CommitWorkerBatch` is one SQLite transaction, and the acks
that follow it go out only after it committed, so a `kill -9` at any point loses no acknowledged
update (the restarted worker rebuilds its partial sum from its file and publishes it again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from aggregator.round_events import Log
from aggregator.service import Link
from aggregator.serving_heap import long_lived_objects_frozen
from aggregator.worker_core import CommitWorkerBatch, StartWorkerRound, WorkerEffect
from aggregator.worker_store import WorkerStore
from fleet_protocol.mqtt_link import MqttPublishTimeoutError
from fleet_protocol.publish import Publish
from fleet_protocol.topics import subscription_topic

POLL_S = 0.2
MAX_BATCH = 512  # updates per group commit at most


def shared_group(fleet: str) -> str:
    """The shared-subscription group of a fleet's workers."""
    return f"iomt-workers-{fleet}"


def worker_subscriptions(fleet: str, *, shared: bool = True) -> tuple[str, ...]:
    """Rounds, heads and partial sums for every worker; updates shared across the group.

    `shared=False` leaves the updates out: they come from a connection of their own instead,
    libmosquitto's (`aggregator.mosquitto_feed`) or a NATS queue group's
    (`aggregator.nats_queue`, for NATS, which has no MQTT shared subscriptions).
    """
    common = tuple(subscription_topic(fleet, kind) for kind in ("round", "model", "partial"))
    return (*common, shared_update_topic(fleet)) if shared else common


def shared_update_topic(fleet: str) -> str:
    """The fleet's updates, shared across its workers (`$share/{group}/...`)."""
    return f"$share/{shared_group(fleet)}/{subscription_topic(fleet, 'update')}"


class BatchCore(Protocol):
    """What the service drives: a worker's core, or a secure site's (`secure_site_core`)."""

    def handle(self, messages: list[tuple[str, bytes]], now: float) -> Sequence[WorkerEffect]:
        """Effects of a batch of messages (none: time passed), in the order to carry out."""

    def wake_at(self) -> float | None:
        """When time alone has something for the core to do."""

    @property
    def counts(self) -> dict[str, int]:
        """What it refused or dropped, by reason (logged when the service stops)."""


class WorkerService:
    """Runs until `stop_when()` says so (a test or the CLI's signal handler)."""

    def __init__(self, core: BatchCore, link: Link, store: WorkerStore, *,
                 clock: Callable[[], float] = time.time,
                 log: Callable[[str], None] = lambda line: None) -> None:  # fmt: skip
        self.core, self.link, self.store = core, link, store
        self._clock, self._log = clock, log

    def run(self, stop_when: Callable[[], bool] = lambda: False) -> None:
        """Batch, decide, commit, acknowledge, publish partial sums; until stopped."""
        with long_lived_objects_frozen():
            while not stop_when():
                batch = self._next_batch()
                self._carry_out(self.core.handle(batch, self._clock()))

    def _next_batch(self) -> list[tuple[str, bytes]]:
        wake = self.core.wake_at()
        wait = POLL_S if wake is None else min(POLL_S, max(0.0, wake - self._clock()))
        batch: list[tuple[str, bytes]] = []
        event = self.link.next_event(wait)
        while event is not None:
            if event.kind == "message":
                batch.append((event.topic, event.payload))
            if len(batch) >= MAX_BATCH:
                break
            event = self.link.next_event(0.0)
        return batch

    def _carry_out(self, effects: Sequence[WorkerEffect]) -> None:
        for effect in effects:
            if isinstance(effect, CommitWorkerBatch):
                self.store.commit_batch(effect.updates, effect.dropped, effect.changes)
            elif isinstance(effect, StartWorkerRound):
                self.store.start_round(effect.round_id, effect.base_version)
            elif isinstance(effect, Publish):
                self._publish(effect)
            elif isinstance(effect, Log):
                self._log(effect.line)

    def _publish(self, effect: Publish) -> None:
        try:
            self.link.publish(effect.topic, effect.payload, retain=effect.retain, wait=False)
        except MqttPublishTimeoutError as exc:  # paho keeps QoS 1 queued until it reconnects
            self._log(f"publish to {effect.topic} pending: {exc}")
