"""What the aggregator core does with each message of the open round (pure, like the core).

A device's status marks it online or offline; an update is reassembled from its chunks, decoded
against the round's head, validated (`update_validation`), bounded (`update_bounds`), folded
into the strategy and stored before its ack is published; a worker's or site's partial sum is
verified and booked. What the message gate drops unread is counted here and stored, one row per
reason, now and then. Opening and closing rounds is `aggregator.round_core`'s.
"""

from __future__ import annotations

import hashlib

from aggregator.collecting_round import CollectingRound
from aggregator.core_state import CoreState
from aggregator.device_statuses import read_status
from aggregator.partial_sums import PartialSumBook
from aggregator.round_events import (
    Log,
    StoreAcceptedUpdate,
    StoreDeviceStatus,
    StoreRejection,
)
from aggregator.state_store import AcceptedUpdate
from aggregator.update_bounds import update_violation
from aggregator.update_validation import (
    DeviceHistory,
    OpenRound,
    check_update,
    is_resend_of_accepted,
    reason_for_error,
)
from fleet_protocol.chunking import is_chunk
from fleet_protocol.errors import FederationError, TopicError
from fleet_protocol.messages import ModelUpdate, UpdateAck
from fleet_protocol.secure_aggregation.transport import is_phase_topic
from fleet_protocol.topics import ack_topic, parse_topic
from fleet_protocol.wire import decode_message


class RoundIntake(CoreState):
    """Statuses, updates and partial sums in; stored rows, acks and log lines out."""

    def _on_message(self, topic: str, payload: bytes) -> None:
        if is_phase_topic(topic):
            secure = self._round.secure if self._round else None
            if secure is not None:
                self._publish_phase(secure.handle(topic, payload))
            return
        try:
            parsed = parse_topic(topic)
        except TopicError:
            return
        sender = parsed.arg if parsed.kind in ("status", "update") else None
        if sender and not self._gate.admit(sender, self._now):
            return  # over its budget: counted, not decoded, not acked
        if parsed.kind == "status" and parsed.arg:
            self._on_status(parsed.arg, payload)
        elif parsed.kind == "update" and parsed.arg and self._round is not None:
            self._on_update(self._round, parsed.arg, payload)
        elif parsed.kind == "partial" and self._round and self._round.partials is not None:
            self._on_partial(self._round, self._round.partials, parsed.arg, payload)

    def _on_partial(self, round_: CollectingRound, book: PartialSumBook, signer: str | None,
                    payload: bytes) -> None:  # fmt: skip
        assert self._coordination is not None
        partial, line = book.verified(signer or "", payload, self._coordination.verify_key)
        if line is not None:
            self._emit(line)
        if isinstance(partial, str):
            self._gate.count(f"partial_{partial}")
        elif book.offer(partial) is None:
            round_.participants |= set(partial.participants)

    def _flush_quiet_drops(self) -> None:
        """Store what the gate dropped without a word, one row per reason."""
        round_id = self._round.round_id if self._round else 0
        for reason, count in sorted(self._gate.take_counts(self._now).items()):
            if self._round is not None:
                self._round.count_rejected(reason, count)
            self._emit(StoreRejection(round_id, reason, count))

    def _on_status(self, device_id: str, payload: bytes) -> None:
        verify = self._trust.verify_key
        if verify is not None and verify(device_id) is None:
            self._gate.count("unknown_device")  # with a registry only its devices count online
            return
        latest = self.memory.latest.version if self.memory.latest else None
        reading = read_status(device_id, payload, self._now, latest, verify)
        if reading.refused:
            self._gate.count(f"status_{reading.refused}")
        if not reading.online:
            self.online.discard(device_id)
        else:
            self.online.add(device_id)
            if self._round is not None:
                self._round.seen_online.add(device_id)
        if reading.record is not None:
            self._emit(StoreDeviceStatus(reading.record))
        if reading.ahead_of_latest:
            self._emit(Log(reading.ahead_of_latest))

    def _on_update(self, round_: CollectingRound, device_id: str, payload: bytes) -> None:
        if round_.secure is not None:  # a masked round takes only phase messages
            return
        self._count_traffic(round_.round_id, bytes_in=len(payload))
        if is_chunk(payload):
            try:
                whole = self._chunks.feed(payload, source=device_id)
            except FederationError as exc:
                self._reject(device_id, None, reason_for_error(exc), str(exc))
                return
            finally:
                self._gate.note_chunks(self._chunks.stats)
            if whole is None:
                return  # more chunks to come
            payload = whole
        try:
            message = decode_message(
                payload, expected_type=ModelUpdate,
                expected_shapes=[tuple(w.shape) for w in round_.base.weights],
                max_bytes=self.config.max_update_bytes, verify_key=self._trust.verify_key,
            )  # fmt: skip
        except FederationError as exc:
            self._reject(device_id, None, reason_for_error(exc), str(exc))
            return
        assert isinstance(message, ModelUpdate)
        self._consider(round_, device_id, message, payload)

    def _consider(
        self, round_: CollectingRound, device_id: str, update: ModelUpdate, payload: bytes
    ) -> None:
        history = self._history(round_, update.device_id)
        opened = OpenRound(self.config.fleet, round_.round_id, round_.base.version)
        reason = check_update(update, device_id, opened, history)
        digest = hashlib.sha256(payload).hexdigest()
        if reason is None and self.privacy is not None:  # not drawn, or its budget is spent
            reason = self.privacy.refusal(self.config.fleet, round_.round_id, update.device_id)
        if reason == "duplicate" and is_resend_of_accepted(history, digest):
            round_.resent += 1
            self._ack(device_id, update, True, "already stored")
        elif reason is not None:
            self._reject(device_id, update, reason, f"from {device_id}")
        else:
            self._accept(round_, update, AcceptedUpdate(
                round_.round_id, update.device_id, update.sequence, update.num_examples,
                len(payload), digest,
            ))  # fmt: skip

    def _history(self, round_: CollectingRound, device_id: str) -> DeviceHistory:
        """What is stored of the device: its update in this round, its last sequence."""
        stored = round_.memory.accepted.get(device_id)
        return DeviceHistory(
            stored.sequence if stored else None,
            stored.payload_sha256 if stored else None,
            self.memory.last_sequences.get(device_id),
        )

    def _accept(self, round_: CollectingRound, update: ModelUpdate, row: AcceptedUpdate) -> None:
        violation = update_violation(update.delta, round_.bounds)
        if violation is not None:  # bounded before it touches the model
            self._reject(update.device_id, update, "out_of_bounds", violation)
            return
        try:
            self.strategy.accumulate(update.delta, update.num_examples, update.device_id)
        except FederationError as exc:
            self.strategy.state_from_arrays(round_.memory.strategy_state)  # the last committed
            self._reject(update.device_id, update, reason_for_error(exc), str(exc))
            return
        self._record_accepted(round_, row, {update.device_id})
        self._emit(Log(f"round {round_.round_id}: accepted {update.device_id}"
                       f" ({update.num_examples} ex)"))  # fmt: skip
        self._ack(update.device_id, update, True, "")

    def _record_accepted(
        self, round_: CollectingRound, row: AcceptedUpdate, devices: set[str]
    ) -> None:
        state = self.strategy.state_to_arrays()
        round_.memory.accepted[row.device_id] = row
        round_.memory.strategy_state = state
        round_.participants |= devices
        previous = self.memory.last_sequences.get(row.device_id, row.sequence)
        self.memory.last_sequences[row.device_id] = max(previous, row.sequence)
        self._emit(StoreAcceptedUpdate(row, state, self._now))

    def _reject(self, device_id: str, update: ModelUpdate | None, reason: str, why: str) -> None:
        round_id = self._round.round_id if self._round else 0
        if self._round is not None:
            self._round.count_rejected(reason)
        self._emit(StoreRejection(round_id, reason, device_id=device_id),
                   Log(f"round {round_id}: rejected update ({reason}): {why}"))  # fmt: skip
        self._ack(device_id, update, False, reason)

    def _ack(self, device_id: str, update: ModelUpdate | None, accepted: bool, reason: str) -> None:
        round_id = update.round_id if update else 0
        sequence = update.sequence if update else 0
        ack = UpdateAck(self.config.fleet, round_id, device_id, sequence, accepted, reason)
        try:
            topic = ack_topic(self.config.fleet, device_id)
        except TopicError as exc:
            self._emit(Log(f"ack to {device_id!r} not sent: {exc}"))
            return
        self._publish(topic, self._encode(ack))
