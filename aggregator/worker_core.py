"""An aggregator worker's decisions as a pure state machine: a batch of messages in, effects out.

Several workers share the fleet's update stream (an MQTT 5 shared subscription). Each one
validates the updates it receives exactly as the single aggregator does (signature, round,
shapes, finite, bounds, duplicates), commits the accepted ones of a batch in one transaction,
acknowledges them after that commit, and keeps the float64 sum of `num_examples * delta` that
it publishes as a signed, retained `PartialSum` for the coordinator. The round and its base
head come from the coordinator's retained `round` and `model/{version}` messages.

Effects come out in the order the shell must carry them out: `CommitWorkerBatch` before the
acks of that batch, and a partial sum only ever names committed devices. A device that another
worker already holds (its resend reached this worker) is acked as already stored, not taken
twice; if two workers did take it, the one with the larger id drops it (`aggregator.partial_sums`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aggregator.partial_sums import devices_to_drop
from aggregator.round_events import Log
from aggregator.update_bounds import BoundsPolicy, UpdateBounds, bounds_for_head, flat_violation
from aggregator.update_validation import DeviceHistory, OpenRound, check_update, reason_for_error
from aggregator.worker_store import StoredUpdate, WorkerRound
from fleet_protocol.errors import FederationError, TopicError
from fleet_protocol.messages import GlobalModel, ModelUpdate, RoundAnnouncement, UpdateAck
from fleet_protocol.partial_sum import PartialSum, decode_partial_sum, encode_partial_sum
from fleet_protocol.publish import Publish
from fleet_protocol.topics import ack_topic, parse_topic, partial_topic
from fleet_protocol.wire import DEFAULT_MAX_MESSAGE_BYTES, VerifyKey, decode_message, encode_message

PARTIAL_EVERY_S = 0.2  # a changed partial sum goes out at most this often
PARTIAL_AGAIN_S = 5.0  # an unchanged one goes out again this often while its round is open
CUTOFF_S = 1.0  # refuse updates this close to the deadline: their partial sum must arrive first
MAX_PENDING = 100_000  # updates held while the round or its head is not known yet
_NEW = DeviceHistory(None, None, None)  # a device with nothing stored this round (most updates)


@dataclass(frozen=True)
class WorkerConfig:
    """Who the worker is and what it enforces."""

    fleet: str
    worker_id: str
    bounds: BoundsPolicy = field(default_factory=BoundsPolicy)
    max_update_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    partial_every_s: float = PARTIAL_EVERY_S
    partial_again_s: float = PARTIAL_AGAIN_S
    cutoff_s: float = CUTOFF_S


@dataclass(frozen=True)
class WorkerTrust:
    """Keys: devices' (updates), the coordinator's (rounds, models), ours (acks, partials),
    the other workers' (their partial sums)."""

    device_key: VerifyKey | None = None
    coordinator_key: VerifyKey | None = None
    signing_key: Ed25519PrivateKey | None = None
    peer_key: VerifyKey | None = None


@dataclass(frozen=True)
class StartWorkerRound:
    """Persist that the worker now collects for this round (the previous one's rows go)."""

    round_id: int
    base_version: int


@dataclass(frozen=True)
class CommitWorkerBatch:
    """Persist accepted updates and dropped devices in one transaction, before any ack."""

    updates: list[StoredUpdate]
    dropped: list[str]
    changes: int


WorkerEffect = StartWorkerRound | CommitWorkerBatch | Publish | Log


@dataclass
class _Round:
    """The round being collected and this worker's share of it."""

    announcement: RoundAnnouncement
    shapes: list[tuple[int, ...]]
    bounds: UpdateBounds
    weighted_sum: np.ndarray
    opened: OpenRound  # what `check_update` needs, the same for every update of the round
    changes: int = 0
    total_weight: int = 0
    held: dict[str, StoredUpdate] = field(default_factory=dict)  # device -> its committed update
    others: dict[str, set[str]] = field(default_factory=dict)  # signer -> devices it holds
    published: int = -1  # `changes` of the last partial sum sent


class WorkerCore:
    """One worker's round memory; `handle(messages, now)` returns effects in order."""

    def __init__(self, config: WorkerConfig, trust: WorkerTrust, stored: WorkerRound | None,
                 stored_updates: list[StoredUpdate]) -> None:  # fmt: skip
        self.config, self.trust = config, trust
        self._stored, self._stored_updates = stored, stored_updates
        self._announcement: RoundAnnouncement | None = None
        self._heads: dict[int, GlobalModel] = {}
        self._round: _Round | None = None
        self._pending: list[tuple[str, bytes]] = []
        self._last_partial_at = float("-inf")
        self._now = 0.0
        self._out: list[WorkerEffect] = []
        self._batch: list[StoredUpdate] = []
        self._acks: list[Publish] = []
        self._dropped: list[str] = []
        self.counts: dict[str, int] = {}

    @property
    def round_id(self) -> int | None:
        """The round being collected, once its head is known."""
        return None if self._round is None else self._round.announcement.round_id

    def wake_at(self) -> float | None:
        """When the partial sum is due even if no message comes: soon after a change, and
        again every `partial_again_s` while the round is open."""
        round_ = self._round
        if round_ is None or round_.changes == 0:
            return None
        if round_.published == round_.changes:
            return self._last_partial_at + self.config.partial_again_s
        return self._last_partial_at + self.config.partial_every_s

    def handle(self, messages: list[tuple[str, bytes]], now: float) -> list[WorkerEffect]:
        """Take a batch of messages (possibly none: time passed)."""
        self._now = now
        for topic, payload in messages:
            self._on_message(topic, payload, now)
        self._flush()
        self._maybe_publish_partial(now)
        effects, self._out = self._out, []
        return effects

    # messages ------------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes, now: float) -> None:
        try:
            parsed = parse_topic(topic)
        except TopicError:
            return
        kind = parsed.kind
        if kind == "round" and payload:
            self._on_round(payload)
        elif kind == "model" and payload:
            self._on_model(payload)
        elif kind == "partial" and payload:
            self._on_partial(payload)
        elif kind == "update":
            if self._round is None:
                if len(self._pending) < MAX_PENDING:
                    self._pending.append((topic, payload))
                return
            self._on_update(self._round, parsed.arg or "", payload, now)

    def _on_round(self, payload: bytes) -> None:
        message = from_coordinator(payload, RoundAnnouncement, self.trust, self.counts, "round")
        if not isinstance(message, RoundAnnouncement):
            return
        current = self._round
        if current is not None and current.announcement.round_id == message.round_id:
            current.announcement = message  # a resumed round has a later deadline
            return
        self._announcement = message
        self._begin_if_ready()

    def _on_model(self, payload: bytes) -> None:
        message = from_coordinator(payload, GlobalModel, self.trust, self.counts, "model")
        if not isinstance(message, GlobalModel):
            return
        self._heads[message.model_version] = message
        self._begin_if_ready()

    def _begin_if_ready(self) -> None:
        announcement = self._announcement
        head = self._heads.get(announcement.model_version) if announcement else None
        if announcement is None or head is None:
            return
        shapes = [tuple(w.shape) for w in head.weights]
        size = sum(int(np.prod(s)) for s in shapes)
        bounds = bounds_for_head(head.weights, self.config.bounds)
        opened = OpenRound(self.config.fleet, announcement.round_id, announcement.model_version)
        self._round = _Round(announcement, shapes, bounds, np.zeros(size, dtype=np.float64),
                             opened)  # fmt: skip
        self._announcement, self._heads = None, {announcement.model_version: head}
        stored = self._stored
        if stored is not None and stored.round_id == announcement.round_id:
            self._restore(self._round, stored)
        else:
            self._out.append(StartWorkerRound(announcement.round_id, announcement.model_version))
            self._out.append(Log(f"round {announcement.round_id}: collecting"))
        self._stored, self._stored_updates = None, []
        pending, self._pending = self._pending, []
        for topic, payload in pending:
            self._on_message(topic, payload, self._now)

    def _restore(self, round_: _Round, stored: WorkerRound) -> None:
        """After a restart: the committed updates of this round back into the sum."""
        for row in self._stored_updates:
            update = self._decode(round_, row.payload, verify=False)
            if isinstance(update, ModelUpdate):
                self._fold(round_, row, _flat64(update.delta))
        round_.changes = stored.changes
        self._out.append(Log(f"round {stored.round_id}: resumed with {len(round_.held)} updates"))

    def _on_partial(self, payload: bytes) -> None:
        round_ = self._round
        try:
            partial = decode_partial_sum(payload, verify_key=self.trust.peer_key)
        except FederationError as exc:
            self._count(f"partial_{exc.reason}")
            return
        if round_ is None or partial.signer_id == self.config.worker_id:
            return
        if partial.round_id != round_.announcement.round_id:
            return
        round_.others[partial.signer_id] = set(partial.participants)
        for device in devices_to_drop(self.config.worker_id, set(round_.held), round_.others):
            self._drop(round_, device)

    def _on_update(self, round_: _Round, topic_device: str, payload: bytes, now: float) -> None:
        update = self._decode(round_, payload, verify=True)
        if isinstance(update, str):
            self._ack(topic_device, None, update)
            return
        announcement = round_.announcement
        held = round_.held.get(update.device_id)
        history = _NEW if held is None else DeviceHistory(held.sequence, held.sha256, None)
        reason = check_update(update, topic_device, round_.opened, history)
        if reason is None and any(update.device_id in d for d in round_.others.values()):
            reason = "duplicate"  # another worker holds it: its resend reached us (at any time)
        if reason is None and now > announcement.deadline_unix - self.config.cutoff_s:
            reason = "stale"  # too late for its partial sum to reach the coordinator in time
        digest = hashlib.sha256(payload).hexdigest()
        if reason == "duplicate":  # the same bytes again, or held by another worker: stored
            resend = held is None or held.sha256 == digest
            if resend:
                self._count("resent")
            self._ack(update.device_id, update, "" if resend else "duplicate")
            return
        flat = None if reason else _flat64(update.delta)
        if flat is None or flat_violation(flat, round_.bounds) is not None:
            self._ack(update.device_id, update, reason or "out_of_bounds")
            return
        row = StoredUpdate(announcement.round_id, update.device_id, update.sequence,
                           update.num_examples, digest, payload, now)  # fmt: skip
        self._fold(round_, row, flat)
        round_.changes += 1
        self._batch.append(row)
        self._ack(update.device_id, update, "")

    def _decode(self, round_: _Round, payload: bytes, *, verify: bool) -> ModelUpdate | str:
        """The update, or why it is refused."""
        try:
            message = decode_message(
                payload, expected_type=ModelUpdate, expected_shapes=round_.shapes,
                max_bytes=self.config.max_update_bytes,
                verify_key=self.trust.device_key if verify else None,
            )  # fmt: skip
        except FederationError as exc:
            return reason_for_error(exc)
        assert isinstance(message, ModelUpdate)
        return message

    # the sum ---------------------------------------------------------------------------------
    def _fold(self, round_: _Round, row: StoredUpdate, flat: np.ndarray) -> None:
        """Add `num_examples * delta` (float64, checked finite and in bounds when taken)."""
        flat *= row.num_examples
        round_.weighted_sum += flat
        round_.total_weight += row.num_examples
        round_.held[row.device_id] = row

    def _drop(self, round_: _Round, device: str) -> None:
        row = round_.held.pop(device)
        update = self._decode(round_, row.payload, verify=False)
        assert isinstance(update, ModelUpdate)  # it decoded when it was taken
        flat = _flat64(update.delta)
        flat *= row.num_examples
        round_.weighted_sum -= flat
        round_.total_weight -= row.num_examples
        round_.changes += 1
        self._dropped.append(device)
        self._batch = [u for u in self._batch if u.device_id != device]
        self._out.append(Log(f"round {row.round_id}: {device} is held by a worker with a"
                             " smaller id; dropped from this partial sum"))  # fmt: skip

    def _flush(self) -> None:
        """One commit for the batch, then its acks (never an ack before its commit)."""
        round_ = self._round
        if round_ is not None and (self._batch or self._dropped):
            self._out.append(CommitWorkerBatch(self._batch, self._dropped, round_.changes))
        self._out.extend(self._acks)
        self._batch, self._dropped, self._acks = [], [], []

    def _maybe_publish_partial(self, now: float) -> None:
        """A changed sum goes out at most every `partial_every_s` (at once near the deadline);
        an unchanged one again every `partial_again_s`, so that a publish the broker lost (a
        node's failover) cannot leave the coordinator short: it ignores a sequence it has."""
        round_ = self._round
        if round_ is None or round_.changes == 0:
            return
        if round_.published == round_.changes:
            if now < self._last_partial_at + self.config.partial_again_s:
                return
        else:
            due = self._last_partial_at + self.config.partial_every_s
            near_deadline = now >= round_.announcement.deadline_unix - self.config.cutoff_s
            if now < due and not near_deadline:
                return
        announcement = round_.announcement
        partial = PartialSum(
            self.config.fleet, announcement.round_id, announcement.model_version,
            self.config.worker_id, round_.changes, round_.weighted_sum.copy(),
            round_.total_weight, tuple(sorted(round_.held)), tuple(round_.shapes),
        )  # fmt: skip
        payload = encode_partial_sum(partial, self.trust.signing_key)
        self._out.append(Publish(partial_topic(self.config.fleet, self.config.worker_id),
                                 payload, retain=True))  # fmt: skip
        round_.published, self._last_partial_at = round_.changes, now

    # acks ------------------------------------------------------------------------------------
    def _ack(self, device_id: str, update: ModelUpdate | None, reason: str) -> None:
        if reason:
            self._count(reason)
        round_id = update.round_id if update else 0
        sequence = update.sequence if update else 0
        ack = UpdateAck(self.config.fleet, round_id, device_id, sequence, not reason, reason)
        try:
            topic = ack_topic(self.config.fleet, device_id)
        except TopicError:
            return
        self._acks.append(Publish(topic, encode_message(ack, signing_key=self.trust.signing_key)))

    def _count(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1


def from_coordinator(payload: bytes, kind: type, trust: WorkerTrust, counts: dict[str, int],
                     counter: str) -> object | None:  # fmt: skip
    """The coordinator's signed message (a worker's or a site's copy of its round or head), or
    None, counted under `counter`_reason."""
    try:
        return decode_message(payload, expected_type=kind, verify_key=trust.coordinator_key)
    except FederationError as exc:
        counts[f"{counter}_{exc.reason}"] = counts.get(f"{counter}_{exc.reason}", 0) + 1
        return None


def _flat64(delta: list[np.ndarray]) -> np.ndarray:
    """An update's tensors as one float64 vector: one concatenation that casts as it copies."""
    return np.concatenate(delta, axis=None, dtype=np.float64)
