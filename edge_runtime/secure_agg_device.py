"""The device's side of a secure-aggregation round (`iomt edge --secure-agg`).

Wraps the device's `FedClient`: the client still follows rounds and installs signed models,
but instead of publishing its delta in clear it answers the aggregator's `sa/` phases through
a `SecAggParticipant`. When the shares inbox arrives (phase 3) the device computes the very
update a plain round would send (`FedClient.releasable_update`: the one `local_update`, then
on-device DP if it is on), encodes it in fixed point and masks it. A round counts as done for
`--max-rounds` once our input was among the survivors.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_runtime.fed_client import FedClient
from edge_runtime.round_events import LogRecord
from fleet_protocol.aggregator_identity import aggregator_verifier
from fleet_protocol.errors import FederationError
from fleet_protocol.mqtt_link import LinkEvent, MqttLinkError
from fleet_protocol.secure_aggregation.client import encode_weighted_update
from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.secure_aggregation.fixed_point import Vector
from fleet_protocol.secure_aggregation.messages import SecAggConfig
from fleet_protocol.secure_aggregation.participant import SecAggParticipant
from fleet_protocol.secure_aggregation.transport import (
    DEVICE_TOPICS,
    device_subscriptions,
    device_topic,
    is_phase_topic,
)


class SecureAggDevice:
    """Routes `sa/` events to a participant whose input is this device's fine-tuned delta."""

    def __init__(self, client: FedClient, aggregator_key: Ed25519PublicKey | None,
                 log: Callable[[LogRecord], None] = lambda record: None) -> None:  # fmt: skip
        self.client, self._log = client, log
        config = client.config
        verify = aggregator_verifier(aggregator_key) if aggregator_key else None
        self.participant = SecAggParticipant(config.fleet, config.device_id, self._make_input,
                                             client.signing_key, verify)  # fmt: skip
        self._response_topic = device_topic(config.fleet, DEVICE_TOPICS["response"],
                                            config.device_id)  # fmt: skip

    @staticmethod
    def subscriptions(fleet: str, device_id: str) -> tuple[str, ...]:
        return device_subscriptions(fleet, device_id)

    @staticmethod
    def wants(event: LinkEvent) -> bool:
        return event.kind == "message" and is_phase_topic(event.topic)

    def handle(self, event: LinkEvent) -> None:
        """Answer one phase message; a failure makes us a dropout for this round, nothing more."""
        try:
            for message in self.participant.handle(event.topic, event.payload):
                self.client.link.publish(message.topic, message.payload, retain=message.retain)
                if message.topic == self._response_topic:
                    assert self.participant.round_id is not None
                    self.client.count_secure_round(self.participant.round_id)
        except (FederationError, MqttLinkError) as exc:
            self._log({"event": "secure_agg_skipped", "topic": event.topic, "error": str(exc)})

    def _make_input(self, round_id: int, config: SecAggConfig) -> Vector:
        """The same update a plain round would send (DP applied before masking), encoded."""
        client, store = self.client, self.client.store
        round_ = client.announcement
        if round_ is None or round_.round_id != round_id:
            raise SecureAggregationError(f"not ready for round {round_id} (no announcement)")
        update = client.releasable_update(round_)
        if update is None:
            raise SecureAggregationError(
                f"not ready for round {round_id}: model not installed or too few labelled windows"
            )
        store.record_round_sent(round_id, round_.model_version, store.next_sequence(),
                                update.num_examples)  # fmt: skip
        self._log({"event": "secure_update", "round": round_id,
                   "num_examples": update.num_examples})  # fmt: skip
        return encode_weighted_update(update.delta, update.num_examples, config)
