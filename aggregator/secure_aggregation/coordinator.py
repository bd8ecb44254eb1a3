"""The aggregator's secure aggregation state machine for one round, with a deadline per phase.

Pure apart from the injected clock: `start()` and every `handle`/`tick` return the messages to
publish. Phases advance as soon as every expected device answered, or at the phase deadline if
at least `threshold` did; otherwise the round fails (`error` is set). `result` is the unmasked
sum (mod 2^32) once `done`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aggregator.secure_aggregation.server import SecAggServer
from fleet_protocol.publish import Publish
from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.secure_aggregation.fixed_point import Vector
from fleet_protocol.secure_aggregation.messages import SecAggConfig, UnmaskRequest
from fleet_protocol.secure_aggregation.transport import (
    BROADCAST_TOPICS,
    DEVICE_TOPICS,
    INBOX_TOPIC,
    broadcast_topic,
    decode_phase,
    device_topic,
    encode_phase,
)
from fleet_protocol.topics import AGGREGATOR_ID
from fleet_protocol.wire import VerifyKey

_NEXT = {"keys": "shares", "shares": "masked", "masked": "response", "response": "done"}


class SecAggCoordinator:
    """One round: config -> keys -> shares -> masked inputs -> unmask responses -> sum."""

    def __init__(self, fleet: str, round_id: int, config: SecAggConfig,
                 expected: frozenset[str], phase_timeout_s: float,
                 signing_key: Ed25519PrivateKey | None = None,
                 verify_device: VerifyKey | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 min_devices: int = 0) -> None:  # fmt: skip
        self.fleet, self.round_id, self.config = fleet, round_id, config
        self.expected, self.phase_timeout_s = expected, phase_timeout_s
        self._signing_key, self._verify, self._clock = signing_key, verify_device, clock
        self.server = SecAggServer(config)
        self.phase, self.deadline = "keys", 0.0
        self.received: dict[str, dict[str, object]] = {k: {} for k in _NEXT}
        self.request: UnmaskRequest | None = None
        self.result: Vector | None = None
        self.error: str | None = None
        self.rejected = 0
        self.bytes_in = self.bytes_out = 0  # phase traffic, for the round's metrics
        self.min_devices = min_devices  # keys phase: wait for at least this many (or deadline)

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None

    def subscriptions(self) -> tuple[str, ...]:
        return tuple(f"{broadcast_topic(self.fleet, level)}/+" for level in DEVICE_TOPICS.values())

    def start(self) -> list[Publish]:
        self.deadline = self._clock() + self.phase_timeout_s
        return self._counted([self._broadcast("config", self.config)])

    def handle(self, topic: str, payload: bytes) -> list[Publish]:
        """A device's phase message; advance when everyone expected has answered."""
        if self.done or not payload:
            return []
        self.bytes_in += len(payload)
        try:
            message = decode_phase(payload, self._verify)
        except SecureAggregationError:
            self.rejected += 1
            return []
        level = DEVICE_TOPICS.get(message.kind)
        topic_ok = level is not None and topic == device_topic(self.fleet, level, message.sender)
        if not topic_ok or message.round_id != self.round_id or message.kind != self.phase:
            self.rejected += int(not topic_ok or message.round_id != self.round_id)
            return []
        received = self.received[self.phase]
        received[message.sender] = message.content
        enough = self.phase != "keys" or len(received) >= self.min_devices
        complete = enough and set(received) >= self._waiting_for()
        return self._counted(self._advance()) if complete else []

    def tick(self) -> list[Publish]:
        """Advance (or fail) a phase whose deadline passed."""
        if self.done or self._clock() < self.deadline:
            return []
        return self._counted(self._advance())

    def _counted(self, messages: list[Publish]) -> list[Publish]:
        self.bytes_out += sum(len(m.payload) for m in messages)
        return messages

    def _waiting_for(self) -> set[str]:
        if self.phase == "keys":
            return set(self.expected)
        if self.phase == "shares":
            return set(self.server.advertised)
        if self.phase == "masked":
            return set(self.server.shared)
        assert self.request is not None
        return set(self.request.survivors)

    def _advance(self) -> list[Publish]:
        answers = list(self.received[self.phase].values())
        try:
            out = self._next_messages(answers)
        except SecureAggregationError as exc:
            self.error = f"{self.phase}: {exc}"
            return []
        self.phase = _NEXT[self.phase]
        self.deadline = self._clock() + self.phase_timeout_s
        return out

    def _next_messages(self, answers: list[object]) -> list[Publish]:
        if self.phase == "keys":
            return [self._broadcast("keylist", self.server.collect_advertisements(answers))]  # type: ignore[arg-type]
        if self.phase == "shares":
            routed = self.server.route_shares([s for batch in answers for s in batch])  # type: ignore[attr-defined]
            return [self._to_device(d, shares) for d, shares in routed.items()]
        if self.phase == "masked":
            self.request = self.server.collect_inputs(answers)  # type: ignore[arg-type]
            return [self._broadcast("request", self.request)]
        assert self.request is not None
        self.result = self.server.unmask(answers, self.request)  # type: ignore[arg-type]
        return [Publish(broadcast_topic(self.fleet, level), b"", retain=True)
                for level in BROADCAST_TOPICS.values()]  # clear the retained phases  # fmt: skip

    def _broadcast(self, kind: str, content: object) -> Publish:
        payload = encode_phase(kind, self.round_id, AGGREGATOR_ID, content, self._signing_key)
        return Publish(broadcast_topic(self.fleet, BROADCAST_TOPICS[kind]), payload, retain=True)

    def _to_device(self, device_id: str, content: object) -> Publish:
        payload = encode_phase("inbox", self.round_id, AGGREGATOR_ID, content, self._signing_key)
        return Publish(device_topic(self.fleet, INBOX_TOPIC, device_id), payload)
