"""The device's side of a secure-aggregation round (`iomt edge --secure-agg`).

Wraps the device's `FedClient`: the client still follows rounds and installs signed models,
but instead of publishing its delta in clear it answers the aggregator's `sa/` phases through
a `SecAggParticipant`. The head is fine-tuned when the shares inbox arrives (phase 3), exactly
as `FedClient` would, then clipped and noised if on-device DP is on, encoded in fixed point and
masked. A round counts as done for `--max-rounds` once our input was among the survivors.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_runtime.fed_client import FedClient
from edge_runtime.fine_tune import FineTuneConfig, fine_tune, weight_delta
from edge_runtime.model_install import current_head
from fleet_protocol.aggregator_identity import aggregator_verifier
from fleet_protocol.differential_privacy import privatize_on_device
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
                 log: Callable[[dict[str, Any]], None] = lambda record: None) -> None:  # fmt: skip
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
                    self._count_round()
        except (FederationError, MqttLinkError) as exc:
            self._log({"event": "secure_agg_skipped", "topic": event.topic, "error": str(exc)})

    def _count_round(self) -> None:
        round_id = self.participant.round_id
        self.client.store.set_meta(f"ack:{round_id}", "secure")
        self.client.rounds_acked += 1
        self._log({"event": "secure_round", "round": round_id})

    def _make_input(self, round_id: int, config: SecAggConfig) -> Vector:
        client, store = self.client, self.client.store
        round_ = client.announcement
        installed = current_head(client.heads_dir)
        if round_ is None or round_.round_id != round_id or installed is None \
                or int(installed.version) != round_.model_version:  # fmt: skip
            raise SecureAggregationError(f"not ready for round {round_id} (model not installed)")
        X, y = store.labelled_embeddings(limit=client.config.max_samples)
        if len(y) < client.config.min_samples:
            raise SecureAggregationError(f"only {len(y)} labelled windows for round {round_id}")
        fit = round_.config
        seed = (client.config.seed * 1_000_003 + zlib.crc32(client.config.device_id.encode())
                + round_id) % 2**32  # fmt: skip
        result = fine_tune(
            installed.weights, installed.head.activations, X, y,
            FineTuneConfig(epochs=fit.local_epochs, batch_size=fit.batch_size,
                           learning_rate=fit.learning_rate,
                           optimizer="adam" if fit.optimizer == "adam" else "sgd",
                           l2=fit.l2, proximal_mu=fit.proximal_mu, seed=seed),
            global_weights=installed.weights,
        )  # fmt: skip
        delta = weight_delta(result.weights, installed.weights)
        if client.config.dp_local is not None:  # noise before masking: DP against everyone
            delta = privatize_on_device(delta, client.config.dp_local, np.random.default_rng())
        store.record_round_sent(round_id, round_.model_version, store.next_sequence(),
                                result.num_examples)  # fmt: skip
        self._log({"event": "secure_update", "round": round_id,
                   "num_examples": result.num_examples})  # fmt: skip
        return encode_weighted_update(delta, result.num_examples, config)
