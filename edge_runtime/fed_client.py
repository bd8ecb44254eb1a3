"""The device's side of a federated round, driven by MQTT events from `fleet_protocol.mqtt_link`.

The client follows the retained round announcement, installs announced global heads (hash
checked, atomic), and when it holds enough labelled embeddings fine-tunes the head from the
announced version and sends the delta. Exactly-once per round across restarts: the encoded
update is written to the outbox and the round recorded as sent in the sample store BEFORE it
is published; after a restart, an un-acked round is resent with the very same bytes, never
recomputed. All network calls happen in the owner's thread (never in a paho callback).
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.fine_tune import FineTuneConfig, fine_tune, weight_delta
from edge_runtime.model_install import current_head, install_head
from edge_runtime.sample_store import SampleStore
from fleet_protocol.aggregator_identity import aggregator_verifier
from fleet_protocol.chunking import DEFAULT_MAX_CHUNK_BYTES, split_into_chunks
from fleet_protocol.differential_privacy import DpConfig, gaussian_epsilon, privatize_on_device
from fleet_protocol.errors import FederationError, TopicError
from fleet_protocol.messages import (
    DeviceStatus,
    GlobalModel,
    ModelUpdate,
    RoundAnnouncement,
    UpdateAck,
)
from fleet_protocol.mqtt_link import LastWill, LinkEvent, MqttLinkError
from fleet_protocol.signing import generate_signing_key, private_key_from_bytes
from fleet_protocol.signing import private_key_to_bytes as _key_bytes
from fleet_protocol.topics import (
    ack_topic,
    parse_topic,
    round_topic,
    status_topic,
    subscription_topic,
    update_topic,
)
from fleet_protocol.wire import decode_message, encode_message, message_sha256

ACK_TIMEOUT_S = 15.0
SAMPLE_CHECK_S = 1.0
KEY_FILE = "device.key"


@dataclass(frozen=True)
class ClientConfig:
    """Who this device is and when it takes part in a round."""

    fleet: str
    device_id: str
    min_samples: int = 16
    max_samples: int | None = 2000
    ack_timeout_s: float = ACK_TIMEOUT_S
    seed: int = 0
    max_message_bytes: int = DEFAULT_MAX_CHUNK_BYTES  # larger updates travel as chunks
    dp_local: DpConfig | None = None  # on-device DP: clip + noise before the delta leaves
    poison_scale: float | None = None  # experiments only: send delta * scale (e.g. -10)


def client_subscriptions(fleet: str, device_id: str) -> tuple[str, ...]:
    """Topics a device follows: the round, global models, its own acks."""
    return (round_topic(fleet), subscription_topic(fleet, "model"), ack_topic(fleet, device_id))


def status_payload(fleet: str, device_id: str, online: bool, version: int | None) -> bytes:
    """Encoded retained status (also used, with online=False, as the last will)."""
    return encode_message(DeviceStatus(fleet, device_id, online, version))


def last_will(fleet: str, device_id: str) -> LastWill:
    """What the broker publishes for us if we vanish."""
    return LastWill(status_topic(fleet, device_id), status_payload(fleet, device_id, False, None))


def load_or_create_key(directory: Path) -> Ed25519PrivateKey:
    """The device's Ed25519 identity, kept in its store directory (created 0600 once)."""
    path = directory / KEY_FILE
    if path.exists():
        return private_key_from_bytes(path.read_bytes())
    key = generate_signing_key()
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(_key_bytes(key))
        stream.flush()
        os.fsync(stream.fileno())
    return key


class FedClient:
    """Round participation for one device; `handle(event)` and `tick()` from one thread."""

    def __init__(
        self,
        config: ClientConfig,
        link: Any,
        store: SampleStore,
        heads_dir: Path,
        signing_key: Ed25519PrivateKey | None,
        *,
        clock: Callable[[], float] = time.time,
        log: Callable[[dict[str, Any]], None] = lambda record: None,
        aggregator_key: Ed25519PublicKey | None = None,
    ) -> None:
        self.config, self.link, self.store = config, link, store
        # with the aggregator's key, unsigned or forged rounds, models and acks are refused
        self._verify = aggregator_verifier(aggregator_key) if aggregator_key else None
        self.refused: dict[str, int] = {}
        self.heads_dir, self.signing_key = heads_dir, signing_key
        self._clock, self._log = clock, log
        self.outbox = heads_dir.parent / "outbox"
        self.announcement: RoundAnnouncement | None = None
        self.rounds_acked = 0  # accepted acks received by this process
        self.rounds_settled = 0  # rounds this process sent that are over (acked or superseded)
        self._in_flight: dict[int, int] = {}  # round sent by this process -> its base version
        self._last_send: float | None = None
        self._next_sample_check = 0.0  # counting labelled rows is SQL: at most every second

    # state
    @property
    def installed_version(self) -> int | None:
        installed = current_head(self.heads_dir)
        return None if installed is None else int(installed.version)

    @property
    def rounds_done(self) -> int:
        """Rounds this process took part in that are over (acked, or a newer model or round).

        A lost ack (the aggregator died after committing and finished without us) still ends
        the round once its successor model or round shows up.
        """
        return max(self.rounds_acked, self.rounds_settled)

    def _acked(self, round_id: int) -> bool:
        return self.store.get_meta(f"ack:{round_id}") is not None

    # events
    def handle(self, event: LinkEvent) -> None:
        """React to one event from the link queue."""
        if event.kind == "connected":
            self.publish_status(True)
            return
        if event.kind != "message" or not event.payload:
            return
        try:
            parsed = parse_topic(event.topic)
        except TopicError:
            return
        handlers = {"round": self._on_round, "model": self._on_model, "ack": self._on_ack}
        handler = handlers.get(parsed.kind)
        if handler is not None:
            try:
                handler(event.payload)
            except FederationError as exc:
                self.refused[exc.reason] = self.refused.get(exc.reason, 0) + 1
                self._log({"event": "bad_message", "topic": event.topic, "error": str(exc)})
            except EdgeRuntimeError as exc:  # a model that is no valid head: keep the old one
                self.refused["install"] = self.refused.get("install", 0) + 1
                self._log({"event": "bad_model", "topic": event.topic, "error": str(exc)})

    def _on_round(self, payload: bytes) -> None:
        message = decode_message(payload, expected_type=RoundAnnouncement, verify_key=self._verify)
        assert isinstance(message, RoundAnnouncement)
        if message.fleet != self.config.fleet:
            return
        self.announcement = message
        self._next_sample_check = 0.0
        self._log({"event": "round", "round": message.round_id, "version": message.model_version})
        for earlier in [r for r in self._in_flight if r < message.round_id]:
            self._settle(earlier, "superseded")  # its round closed; the ack got lost
        if self.store.was_round_sent(message.round_id) and not self._acked(message.round_id):
            self._resend(message)  # the aggregator restarted: same bytes again

    def _on_model(self, payload: bytes) -> None:
        current = current_head(self.heads_dir)
        shapes = [tuple(w.shape) for w in current.weights] if current is not None else None
        message = decode_message(
            payload, expected_type=GlobalModel, expected_shapes=shapes, verify_key=self._verify
        )
        assert isinstance(message, GlobalModel)
        installed = self.installed_version
        if installed is not None and message.model_version <= installed:
            return
        expected = self.announcement
        sha = message_sha256(message.weights)
        announced = expected is not None and expected.model_version == message.model_version
        if announced and expected is not None and sha != expected.model_sha256:
            self._log({"event": "model_rejected", "version": message.model_version})
            return
        install_head(self.heads_dir, message.model_version, message.weights)
        self._next_sample_check = 0.0
        for round_id, base in list(self._in_flight.items()):
            if message.model_version > base:
                self._settle(round_id, "superseded")
        self._log({"event": "installed", "version": message.model_version, "sha256": sha})
        self.publish_status(True)

    def _on_ack(self, payload: bytes) -> None:
        ack = decode_message(payload, expected_type=UpdateAck, verify_key=self._verify)
        assert isinstance(ack, UpdateAck)
        if ack.device_id != self.config.device_id or self._acked(ack.round_id):
            return
        self.store.set_meta(f"ack:{ack.round_id}", "accepted" if ack.accepted else ack.reason)
        self.rounds_acked += int(ack.accepted)
        self._settle(ack.round_id, None)
        self._log({"event": "ack", "round": ack.round_id, "accepted": ack.accepted,
                   "reason": ack.reason})  # fmt: skip

    # periodic work
    def tick(self) -> None:
        """Take part in the open round if possible; resend an un-acked update after a timeout."""
        round_ = self.announcement
        if round_ is None:
            return
        if self.store.was_round_sent(round_.round_id):
            overdue = (self._last_send or 0) + self.config.ack_timeout_s <= self._clock()
            if not self._acked(round_.round_id) and overdue:
                self._resend(round_)
            return
        if self._clock() > round_.deadline_unix or self.installed_version != round_.model_version:
            return
        if self._clock() < self._next_sample_check:
            return
        self._next_sample_check = self._clock() + SAMPLE_CHECK_S
        if self.store.counts().labelled < self.config.min_samples:
            return
        X, y = self.store.labelled_embeddings(limit=self.config.max_samples)
        if len(y) >= self.config.min_samples:
            self._participate(round_, X, y)

    def _participate(self, round_: RoundAnnouncement, X: np.ndarray, y: np.ndarray) -> None:
        installed = current_head(self.heads_dir)
        assert installed is not None
        seed = self._round_seed(round_.round_id)
        fit = round_.config
        result = fine_tune(
            installed.weights, installed.head.activations, X, y,
            FineTuneConfig(epochs=fit.local_epochs, batch_size=fit.batch_size,
                           learning_rate=fit.learning_rate, optimizer=_optimizer(fit.optimizer),
                           momentum=fit.momentum,
                           l2=fit.l2, proximal_mu=fit.proximal_mu, seed=seed),
            global_weights=installed.weights,
        )  # fmt: skip
        sequence = self.store.next_sequence()
        delta = self._private(weight_delta(result.weights, installed.weights))
        if self.config.poison_scale is not None:  # a malicious device, for robustness tests
            delta = [(d * np.float32(self.config.poison_scale)).astype(np.float32) for d in delta]
        update = ModelUpdate(
            self.config.fleet, round_.round_id, round_.model_version, self.config.device_id,
            sequence, result.num_examples, delta,
            {"loss": result.loss_history[-1]} if result.loss_history else {},
        )  # fmt: skip
        payload = encode_message(
            update, codec=round_.codec, signing_key=self.signing_key,
            rng=np.random.default_rng(seed),
        )  # fmt: skip
        self._write_outbox(round_.round_id, payload)
        self.store.record_round_sent(
            round_.round_id, round_.model_version, sequence, result.num_examples
        )
        self._log({"event": "update", "round": round_.round_id, "sequence": sequence,
                   "num_examples": result.num_examples, "bytes": len(payload)})  # fmt: skip
        self._in_flight[round_.round_id] = round_.model_version
        self._send(payload)

    def _private(self, delta: list[np.ndarray]) -> list[np.ndarray]:
        """The delta as it may leave the device: clipped and noised with on-device DP."""
        dp = self.config.dp_local
        if dp is None:
            return delta
        released = len(self.store.recent_rounds(1_000_000)) + 1
        epsilon = gaussian_epsilon(dp.noise_multiplier, released, dp.delta)
        self._log({"event": "dp_local", "rounds": released, "epsilon": epsilon})
        return privatize_on_device(delta, dp, np.random.default_rng())  # OS entropy

    def _round_seed(self, round_id: int) -> int:
        return (self.config.seed * 1_000_003 + zlib.crc32(self.config.device_id.encode())
                + round_id) % 2**32  # fmt: skip

    def _outbox_path(self, round_id: int) -> Path:
        return self.outbox / f"round-{round_id}.bin"

    def _write_outbox(self, round_id: int, payload: bytes) -> None:
        self.outbox.mkdir(parents=True, exist_ok=True)
        path = self._outbox_path(round_id)
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)

    def _resend(self, round_: RoundAnnouncement) -> None:
        path = self._outbox_path(round_.round_id)
        if path.exists():
            self._log({"event": "resend", "round": round_.round_id})
            self._in_flight[round_.round_id] = round_.model_version
            self._send(path.read_bytes())

    def _settle(self, round_id: int, reason: str | None) -> None:
        """A round this process sent is over: acked, or (reason) known closed without an ack."""
        if self._in_flight.pop(round_id, None) is None:
            return
        self.rounds_settled += 1
        if reason is not None and not self._acked(round_id):
            self.store.set_meta(f"ack:{round_id}", reason)  # stop resending it
            self._log({"event": "settled", "round": round_id, "reason": reason})

    def _send(self, payload: bytes) -> None:
        self._last_send = self._clock()
        topic = update_topic(self.config.fleet, self.config.device_id)
        pieces = [payload]
        if len(payload) > self.config.max_message_bytes:
            message_id = f"{self.config.device_id}.{int(self._last_send * 1000)}"
            pieces = split_into_chunks(payload, message_id, self.config.max_message_bytes)
        try:
            for piece in pieces:
                self.link.publish(topic, piece)
        except MqttLinkError as exc:  # paho keeps QoS 1 queued; the ack timer resends anyway
            self._log({"event": "publish_pending", "error": str(exc)})

    def publish_status(self, online: bool) -> None:
        payload = status_payload(self.config.fleet, self.config.device_id, online,
                                 self.installed_version)  # fmt: skip
        try:
            self.link.publish(
                status_topic(self.config.fleet, self.config.device_id), payload, retain=True
            )
        except MqttLinkError as exc:
            self._log({"event": "status_pending", "error": str(exc)})


def _optimizer(name: str) -> Any:
    return "adam" if name == "adam" else "sgd"
