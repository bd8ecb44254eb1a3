"""The device's side of a federated round: the I/O shell around `edge_runtime.round_core`.

Link events and timer ticks become core events; the core's effects are carried out here, in
order: MQTT publishes, head installs, the outbox file, round bookkeeping in the sample store,
and training (the one `local_update`, on-device DP, encoding). Requests the core makes are
answered with reply events fed straight back. All network calls happen in the owner's thread
(never in a paho callback).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_runtime.errors import EdgeRuntimeError, InstallError
from edge_runtime.local_update import LocalUpdate, local_update
from edge_runtime.mcu_training import McuTrainer
from edge_runtime.model_install import current_head, install_head
from edge_runtime.model_privacy import META_KEY as MODEL_PRIVACY_KEY
from edge_runtime.model_privacy import ModelPrivacy
from edge_runtime.residual_store import PendingResidual, model_key
from edge_runtime.round_core import (
    ClientConfig,
    DeviceSnapshot,
    RoundCore,
    round_seed,
    status_payload,
)
from edge_runtime.round_events import (
    ApplyPatch,
    Connected,
    CountLabelled,
    Effect,
    Event,
    FetchModel,
    ForgetRounds,
    HeadInstalled,
    HeadInstallFailed,
    InstallHead,
    LabelledCounted,
    Log,
    LogRecord,
    MessageArrived,
    OutboxRead,
    ReadOutbox,
    RecordAck,
    RecordRoundSent,
    SecureRoundAnswered,
    Tick,
    TooFewExamples,
    TrainForRound,
    UpdateEncoded,
    WriteOutbox,
)
from edge_runtime.sample_store import SampleStore
from edge_runtime.sparse_uplink import sparsify_delta
from fleet_protocol.aggregator_identity import aggregator_verifier
from fleet_protocol.differential_privacy import (
    PRIVACY_BUDGET,
    gaussian_epsilon,
    privatize_on_device,
)
from fleet_protocol.errors import FederationError
from fleet_protocol.messages import ModelUpdate, RoundAnnouncement
from fleet_protocol.model_patch import apply_patch
from fleet_protocol.mqtt_link import LastWill, LinkEvent, MqttLinkError
from fleet_protocol.portable_rng import PortableRng
from fleet_protocol.publish import Publish
from fleet_protocol.signing import generate_signing_key, private_key_from_bytes
from fleet_protocol.signing import private_key_to_bytes as _key_bytes
from fleet_protocol.topics import (
    ack_topic,
    model_topic,
    round_topic,
    status_topic,
    subscription_topic,
)
from fleet_protocol.types import Weights
from fleet_protocol.update_encoding import UpdateEncoding, announced_encoding
from fleet_protocol.wire import encode_message, message_sha256

KEY_FILE = "device.key"


class Publisher(Protocol):
    """The part of `MqttLink` the client uses."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None: ...
    def subscribe(self, topic: str) -> None: ...
    def unsubscribe(self, topic: str) -> None: ...


def client_subscriptions(fleet: str, device_id: str) -> tuple[str, ...]:
    """Topics a device follows: head patches (first, so retained ones come before the round),
    the round, its own acks. A full head (`model/{v}`) is followed only when no patch gives it.
    """
    return (subscription_topic(fleet, "patch"), round_topic(fleet), ack_topic(fleet, device_id))


def last_will(fleet: str, device_id: str, signing_key: Ed25519PrivateKey | None = None) -> LastWill:
    """What the broker publishes for us if we vanish (signed like every status)."""
    payload = status_payload(fleet, device_id, False, None, signing_key)
    return LastWill(status_topic(fleet, device_id), payload)


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


def read_snapshot(store: SampleStore, heads_dir: Path) -> DeviceSnapshot:
    """The core's starting state: installed head and the rounds already sent or settled."""
    try:
        installed = current_head(heads_dir)
    except InstallError:
        installed = None  # a damaged install: the next global model is installed afresh
    return DeviceSnapshot(
        installed_version=None if installed is None else int(installed.version),
        installed_shapes=None if installed is None
        else tuple(tuple(w.shape) for w in installed.weights),
        sent_rounds=frozenset(store.sent_round_ids()),
        settled_rounds=frozenset(store.round_outcomes()),
        privacy_budget_spent=PRIVACY_BUDGET in store.round_outcomes().values(),
    )  # fmt: skip


class FedClient:
    """Round participation for one device; `handle(event)` and `tick()` from one thread."""

    def __init__(
        self,
        config: ClientConfig,
        link: Publisher,
        store: SampleStore,
        heads_dir: Path,
        signing_key: Ed25519PrivateKey | None,
        *,
        clock: Callable[[], float] = time.time,
        log: Callable[[LogRecord], None] = lambda record: None,
        aggregator_key: Ed25519PublicKey | None = None,
        ack_keys: tuple[Ed25519PublicKey, ...] = (),
        mcu: McuTrainer | None = None,
        wait: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config, self.link, self.store = config, link, store
        self.mcu, self._mcu_failed = mcu, set[int]()  # with an MCU, it trains (--train-on-mcu)
        self.heads_dir, self.signing_key = heads_dir, signing_key
        self._clock, self._log, self._wait = clock, log, wait
        self.outbox = heads_dir.parent / "outbox"
        self._residuals: dict[int, PendingResidual] = {}  # committed with RecordRoundSent
        self._fetching: dict[str, int] = {}  # full-head topics followed -> their version
        # with the aggregator's key, unsigned or forged rounds, models and acks are refused;
        # acks are checked against `ack_keys` instead when sites or workers sign them
        verify = aggregator_verifier(aggregator_key) if aggregator_key else None
        ack_verify = tuple(aggregator_verifier(key) for key in ack_keys)
        self.core = RoundCore(config, read_snapshot(store, heads_dir), verify, signing_key,
                              ack_verify)  # fmt: skip

    # state, as the device loop and `iomt edge` read it
    @property
    def announcement(self) -> RoundAnnouncement | None:
        return self.core.announcement

    @property
    def installed_version(self) -> int | None:
        return self.core.installed_version

    @property
    def refused(self) -> dict[str, int]:
        return self.core.refused

    @property
    def rounds_acked(self) -> int:
        return self.core.rounds_acked

    @property
    def rounds_done(self) -> int:
        return self.core.rounds_done

    # events in
    def handle(self, event: LinkEvent) -> None:
        """React to one event from the link queue."""
        if event.kind == "connected":
            self._run(Connected())
        elif event.kind == "message" and event.payload:
            self._run(MessageArrived(event.topic, event.payload))

    def tick(self) -> None:
        """Take part in the open round if possible; resend an un-acked update after a timeout."""
        self._run(Tick())

    def count_secure_round(self, round_id: int) -> None:
        """The secure-aggregation participant answered the final phase of a round."""
        self._run(SecureRoundAnswered(round_id))

    def publish_status(self, online: bool) -> None:
        self._publish(self.core.status(online))

    def _run(self, event: Event) -> None:
        """Feed one event, carry out its effects in order, feed the replies back."""
        pending: deque[Event] = deque([event])
        while pending:
            for effect in self.core.handle(pending.popleft(), self._clock()):
                reply = self._carry_out(effect)
                if reply is not None:
                    pending.append(reply)

    # effects out
    def _carry_out(self, effect: Effect) -> Event | None:
        if isinstance(effect, Publish):
            self._publish(effect)
        elif isinstance(effect, CountLabelled):
            return LabelledCounted(self.store.counts().labelled)
        elif isinstance(effect, TrainForRound):
            return self._train(effect.announcement, effect.seed)
        elif isinstance(effect, InstallHead):
            return self._install(effect.version, effect.weights, effect.privacy)
        elif isinstance(effect, ApplyPatch):
            return self._apply_patch(effect)
        elif isinstance(effect, FetchModel):
            self._follow(model_topic(self.config.fleet, effect.version), subscribe=True)
        elif isinstance(effect, WriteOutbox):
            self._write_outbox(effect.round_id, effect.payload)
        elif isinstance(effect, RecordRoundSent):
            residual = self._residuals.pop(effect.round_id, None)
            self.store.record_round_sent(effect.round_id, effect.base_version, effect.sequence,
                                         effect.num_examples, residual=residual)  # fmt: skip
        elif isinstance(effect, ReadOutbox):
            path = self._outbox_path(effect.round_id)
            return OutboxRead(effect.round_id, path.read_bytes() if path.exists() else None)
        elif isinstance(effect, RecordAck):
            self.store.record_round_outcome(effect.round_id, effect.outcome)
        elif isinstance(effect, ForgetRounds):
            self.store.forget_rounds_from(effect.from_round)
        elif isinstance(effect, Log):
            self._log(effect.record)
        return None

    def _publish(self, effect: Publish) -> None:
        try:
            self.link.publish(effect.topic, effect.payload, retain=effect.retain)
        except MqttLinkError as exc:  # paho keeps QoS 1 queued; the ack timer resends anyway
            self._log({"event": "publish_pending", "topic": effect.topic, "error": str(exc)})

    def _install(
        self, version: int, weights: Weights, privacy: ModelPrivacy | None
    ) -> HeadInstalled | HeadInstallFailed:
        try:
            install_head(self.heads_dir, version, weights)
        except EdgeRuntimeError as exc:
            return HeadInstallFailed(version, str(exc))
        if privacy is not None:  # for the clinician report (edge_runtime.model_privacy)
            self.store.set_meta(MODEL_PRIVACY_KEY, privacy.to_json())
        for topic in [t for t, v in self._fetching.items() if v <= version]:
            self._follow(topic, subscribe=False)  # the full head is no longer needed
        return HeadInstalled(version)

    def _apply_patch(self, effect: ApplyPatch) -> HeadInstalled | HeadInstallFailed:
        """The installed head patched into the next version, installed only if the hashes of
        both the base and the result are the ones the aggregator signed."""
        patch = effect.patch
        installed = current_head(self.heads_dir)
        if installed is None or int(installed.version) != patch.base_version:
            return HeadInstallFailed(patch.model_version, "the patch's base is not installed")
        base = installed.head.weights
        if message_sha256(base) != patch.base_sha256:
            return HeadInstallFailed(patch.model_version, "the installed head is not the base")
        try:
            weights = apply_patch(base, patch.patch)
        except FederationError as exc:
            return HeadInstallFailed(patch.model_version, str(exc))
        if message_sha256(weights) != patch.model_sha256:
            return HeadInstallFailed(patch.model_version, "the patched head has another hash")
        return self._install(patch.model_version, weights, effect.privacy)

    def _follow(self, topic: str, *, subscribe: bool) -> None:
        """(Un)subscribe a full head's topic; a failure is logged (a reconnect asks again)."""
        try:
            if subscribe:
                self.link.subscribe(topic)
                self._fetching[topic] = int(topic.rsplit("/", 1)[1])
            else:
                self._fetching.pop(topic, None)
                self.link.unsubscribe(topic)
        except MqttLinkError as exc:
            self._log({"event": "subscribe_failed", "topic": topic, "error": str(exc)})

    # training
    def releasable_update(self, round_: RoundAnnouncement) -> LocalUpdate | None:
        """This device's update for a round as it may leave the device (DP applied if on).

        None when the installed head is not the announced one or too few labelled windows
        have embeddings. The plain and the secure-aggregation paths both send this.
        """
        installed = current_head(self.heads_dir)
        if installed is None or int(installed.version) != round_.model_version:
            return None
        X, y = self.store.labelled_embeddings(limit=self.config.max_samples)
        if len(y) < self.config.min_samples:
            return None
        seed = round_seed(self.config.seed, self.config.device_id, round_.round_id)
        update = local_update(installed.head, round_.config, X, y, seed)
        return self._private(update)

    def _train(self, round_: RoundAnnouncement, seed: int) -> UpdateEncoded | TooFewExamples:
        if self.mcu is not None:
            return self._train_on_mcu(self.mcu, round_, seed)
        started = self._clock()
        update = self.releasable_update(round_)
        self._wait(max(0.0, started + self.config.min_train_s - self._clock()))  # a slow CPU
        if update is None:
            return TooFewExamples(round_.round_id, self.store.counts().labelled)
        delta = update.delta
        if self.config.poison_scale is not None:  # a malicious device, for robustness tests
            delta = [(d * np.float32(self.config.poison_scale)).astype(np.float32) for d in delta]
        encoding = announced_encoding(round_.codec, round_.encoding)
        delta = self._sparse(round_.round_id, delta, encoding)
        sequence = self.store.next_sequence()
        message = ModelUpdate(self.config.fleet, round_.round_id, round_.model_version,
                              self.config.device_id, sequence, update.num_examples, delta,
                              update.metrics())  # fmt: skip
        payload = encode_message(message, codec=encoding.codec, signing_key=self.signing_key,
                                 rng=PortableRng(seed), compact=encoding.compact,
                                 zstd=encoding.zstd)  # fmt: skip
        return UpdateEncoded(round_.round_id, round_.model_version, sequence,
                             update.num_examples, payload)  # fmt: skip

    def _sparse(self, round_id: int, delta: Weights, encoding: UpdateEncoding) -> Weights:
        """Top-k with the stored residual; the new residual waits for `RecordRoundSent`."""
        key = model_key(self.config.fleet, [tuple(d.shape) for d in delta])
        result = sparsify_delta(delta, encoding, self.store.residual(key))
        if result.changed:
            self._residuals[round_id] = PendingResidual(key, result.residual)
        return result.sent

    def _train_on_mcu(
        self, mcu: McuTrainer, round_: RoundAnnouncement, seed: int
    ) -> UpdateEncoded | TooFewExamples:
        """The round trained by the microcontroller; this host only signs and relays it."""
        installed = current_head(self.heads_dir)
        X, y = self.store.labelled_embeddings(limit=self.config.max_samples)
        skip = installed is None or int(installed.version) != round_.model_version
        if skip or len(y) < self.config.min_samples or round_.round_id in self._mcu_failed:
            return TooFewExamples(round_.round_id, len(y))
        assert installed is not None
        try:
            update = mcu.train(installed.head, round_.model_version, round_.config, X, y, seed,
                               round_.round_id)  # fmt: skip
        except EdgeRuntimeError as exc:  # not retried every tick: the next round tries again
            self._mcu_failed.add(round_.round_id)
            self._log({"event": "mcu_train_failed", "round": round_.round_id, "error": str(exc)})
            return TooFewExamples(round_.round_id, len(y))
        encoding = announced_encoding(round_.codec, round_.encoding)
        # dense: the MCU's int8 tensors as they are; top-k: sparsified here (residual kept here)
        delta = update.delta if encoding.density is None else self._sparse(
            round_.round_id, update.delta, encoding)  # fmt: skip
        relayed = update.coded_for(encoding.codec, PortableRng(seed))
        sequence = self.store.next_sequence()
        message = ModelUpdate(self.config.fleet, round_.round_id, round_.model_version,
                              self.config.device_id, sequence, update.num_examples, delta,
                              {"loss": update.loss, "trained_on_mcu": 1.0})  # fmt: skip
        payload = encode_message(message, codec=encoding.codec, signing_key=self.signing_key,
                                 rng=PortableRng(seed), compact=encoding.compact,
                                 zstd=encoding.zstd,
                                 encoded=relayed if encoding.density is None else None)  # fmt: skip
        return UpdateEncoded(round_.round_id, round_.model_version, sequence,
                             update.num_examples, payload)  # fmt: skip

    def _private(self, update: LocalUpdate) -> LocalUpdate:
        """The update with on-device DP applied (clipped and noised), if it is on."""
        dp = self.config.dp_local
        if dp is None:
            return update
        released = len(self.store.recent_rounds(1_000_000)) + 1
        epsilon = gaussian_epsilon(dp.noise_multiplier, released, dp.delta)
        self._log({"event": "dp_local", "rounds": released, "epsilon": epsilon})
        delta = privatize_on_device(update.delta, dp, np.random.default_rng())  # OS entropy
        return replace(update, delta=delta)

    # outbox
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
