"""The device's secure aggregation state machine: phase messages in, messages to publish out.

Pure (no link, no clock): the caller feeds `(topic, payload)` of the `sa/` topics it follows
and publishes what `handle` returns. Only messages signed by the aggregator count (when a
verifier is given); a retained message seen twice is answered once.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet_protocol.publish import Publish
from fleet_protocol.secure_aggregation.client import SecAggClient
from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.secure_aggregation.fixed_point import Vector
from fleet_protocol.secure_aggregation.messages import SecAggConfig
from fleet_protocol.secure_aggregation.transport import (
    BROADCAST_TOPICS,
    DEVICE_TOPICS,
    INBOX_TOPIC,
    PhaseMessage,
    broadcast_topic,
    decode_phase,
    device_topic,
    encode_phase,
)
from fleet_protocol.topics import AGGREGATOR_ID
from fleet_protocol.wire import VerifyKey

MakeInput = Callable[[int, SecAggConfig], Vector]
"""(round id, config) -> this device's fixed-point vector for the round."""


class SecAggParticipant:
    """One device across rounds of secure aggregation."""

    def __init__(self, fleet: str, device_id: str, make_input: MakeInput,
                 signing_key: Ed25519PrivateKey | None = None,
                 verify_aggregator: VerifyKey | None = None) -> None:  # fmt: skip
        self.fleet, self.device_id, self._make_input = fleet, device_id, make_input
        self._signing_key, self._verify = signing_key, verify_aggregator
        self.round_id: int | None = None
        self._client: SecAggClient | None = None
        self._answered: set[str] = set()

    def subscriptions(self) -> tuple[str, ...]:
        topics = [broadcast_topic(self.fleet, level) for level in BROADCAST_TOPICS.values()]
        return (*topics, device_topic(self.fleet, INBOX_TOPIC, self.device_id))

    def handle(self, topic: str, payload: bytes) -> list[Publish]:
        """React to one phase message from the aggregator (others are ignored)."""
        if not payload:
            return []
        message = decode_phase(payload, self._verify)
        if message.sender != AGGREGATOR_ID:
            raise SecureAggregationError(
                f"phase message from {message.sender!r}, not the aggregator"
            )
        if message.kind == "config":
            return self._start(message)
        if message.round_id != self.round_id or self._client is None:
            return []
        if message.kind in self._answered:
            return []
        self._answered.add(message.kind)
        return self._answer(message, self._client)

    def _start(self, message: PhaseMessage) -> list[Publish]:
        if message.round_id == self.round_id:
            return []
        self.round_id, self._answered = message.round_id, set()
        self._client = SecAggClient(self.device_id, message.content)
        return [self._send("keys", self._client.advertise())]

    def _answer(self, message: PhaseMessage, client: SecAggClient) -> list[Publish]:
        if message.kind == "keylist":
            return [self._send("shares", client.share_keys(message.content))]
        if message.kind == "inbox":
            assert self.round_id is not None
            values = self._make_input(self.round_id, client.config)
            return [self._send("masked", client.masked_input(values, message.content))]
        if message.kind == "request":
            if self.device_id not in message.content.survivors:
                return []  # our input did not arrive in time: nothing to reveal
            return [self._send("response", client.unmask(message.content))]
        return []

    def _send(self, kind: str, content: object) -> Publish:
        assert self.round_id is not None
        topic = device_topic(self.fleet, DEVICE_TOPICS[kind], self.device_id)
        payload = encode_phase(kind, self.round_id, self.device_id, content, self._signing_key)
        return Publish(topic, payload)
