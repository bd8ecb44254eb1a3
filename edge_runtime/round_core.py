"""The device's round logic as a pure state machine: `handle(event, now) -> effects`.

No MQTT, no SQLite, no files, no clock: the shell (`edge_runtime.fed_client.FedClient`)
turns link messages and timer ticks into events, carries out the effects in order, and feeds
the replies back. Decoding a message (with the aggregator's verify key) is pure and happens
here. Exactly-once per round across restarts follows from the order of effects: the outbox is
written and the round recorded BEFORE the update is published, and an un-acked round is
resent by reading the outbox back, never by training again.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_runtime.model_privacy import ModelPrivacy
from edge_runtime.rejoin import RejoinPolicy
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
from fleet_protocol.aggregator_identity import decode_signed_by_any
from fleet_protocol.chunking import DEFAULT_MAX_CHUNK_BYTES, split_into_chunks
from fleet_protocol.device_sampling import is_sampled
from fleet_protocol.differential_privacy import PRIVACY_BUDGET, DpConfig
from fleet_protocol.errors import FederationError, TopicError
from fleet_protocol.messages import (
    DeviceStatus,
    GlobalModel,
    ModelPatch,
    RoundAnnouncement,
    UpdateAck,
)
from fleet_protocol.publish import Publish
from fleet_protocol.topics import parse_topic, status_topic, update_topic
from fleet_protocol.wire import VerifyKey, decode_message, encode_message, message_sha256

ACK_TIMEOUT_S = 15.0
SAMPLE_CHECK_S = 1.0  # counting labelled rows is SQL: at most once a second
Shapes = tuple[tuple[int, ...], ...]


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
    min_train_s: float = 0.0  # experiments only: a local training lasts at least this long


@dataclass(frozen=True)
class DeviceSnapshot:
    """What the shell reads once at start: the installed head and the rounds already sent."""

    installed_version: int | None = None
    installed_shapes: Shapes | None = None
    sent_rounds: frozenset[int] = frozenset()
    settled_rounds: frozenset[int] = frozenset()  # sent rounds with a recorded outcome
    privacy_budget_spent: bool = False  # the aggregator refused an update: budget spent


def round_seed(seed: int, device_id: str, round_id: int) -> int:
    """The training seed of one device in one round (the same on every path and restart)."""
    return (seed * 1_000_003 + zlib.crc32(device_id.encode()) + round_id) % 2**32


def status_payload(
    fleet: str,
    device_id: str,
    online: bool,
    version: int | None,
    signing_key: Ed25519PrivateKey | None = None,
) -> bytes:
    """Encoded retained status (also the last will, offline), signed with the device's key.

    An aggregator with a registry counts a device online only on a status its key signed.
    """
    status = DeviceStatus(fleet, device_id, online, version)
    return encode_message(status, signing_key=signing_key)


@dataclass
class _Progress:
    """Mutable bookkeeping of this process (the durable part lives in the shell's store)."""

    sent: set[int]
    settled: set[int]
    in_flight: dict[int, int] = field(default_factory=dict)  # round sent here -> base version
    last_send: float | None = None
    next_sample_check: float = 0.0
    installing: dict[int, tuple[Shapes, str]] = field(default_factory=dict)  # shapes, sha
    patched: set[int] = field(default_factory=set)  # versions being installed from a patch
    fetching: set[int] = field(default_factory=set)  # full heads asked for since connecting


class RoundCore:
    """One device's round participation; feed it events, carry out what it returns."""

    def __init__(
        self,
        config: ClientConfig,
        snapshot: DeviceSnapshot,
        verify_key: VerifyKey | None = None,
        signing_key: Ed25519PrivateKey | None = None,
        ack_verify_keys: tuple[VerifyKey, ...] = (),
    ) -> None:
        """`ack_verify_keys`: whose acks to trust when sites or workers with keys of their own
        ack (any one of them; default: `verify_key`, the coordinator's)."""
        self.config, self._verify, self._signing_key = config, verify_key, signing_key
        self._verify_acks = ack_verify_keys or (verify_key,)
        self.installed_version = snapshot.installed_version
        self._installed_shapes = snapshot.installed_shapes
        self._progress = _Progress(set(snapshot.sent_rounds), set(snapshot.settled_rounds))
        self.announcement: RoundAnnouncement | None = None
        self.refused: dict[str, int] = {}  # messages refused, by reason
        self.rounds_acked = 0  # accepted acks (or answered secure rounds) in this process
        self.rounds_settled = 0  # rounds this process sent that are over
        self.privacy_budget_spent = snapshot.privacy_budget_spent  # then it never sends again
        self._rejoin = RejoinPolicy()  # a device above the aggregator's versions rejoins it
        self._rejoining: int | None = None  # the round being rejoined, until its head installs
        self._said_below: int | None = None  # the round whose below-installed line was logged
        self.run_over_since: float | None = None  # the announced round's deadline had passed
        self._saw_open_round = False  # a run this process took part in (not a stale retained)

    @property
    def rounds_done(self) -> int:
        """Rounds this process took part in that are over (acked, or a newer model or round).

        A lost ack (the aggregator died after committing and finished without us) still ends
        the round once its successor model or round shows up.
        """
        return max(self.rounds_acked, self.rounds_settled)

    def was_sent(self, round_id: int) -> bool:
        return round_id in self._progress.sent

    def is_settled(self, round_id: int) -> bool:
        return round_id in self._progress.settled

    def status(self, online: bool) -> Publish:
        """The retained status message with the installed version."""
        fleet, device = self.config.fleet, self.config.device_id
        payload = status_payload(fleet, device, online, self.installed_version, self._signing_key)
        return Publish(status_topic(fleet, device), payload, retain=True)

    def handle(self, event: Event, now: float) -> list[Effect]:
        """React to one event at time `now` (Unix seconds)."""
        if isinstance(event, Connected):
            self._progress.fetching.clear()  # a reconnect may have lost those subscriptions
            return [self.status(True)]
        if isinstance(event, MessageArrived):
            return self._on_message(event, now)
        if isinstance(event, Tick):
            return self._on_tick(now)
        if isinstance(event, LabelledCounted):
            return self._on_counted(event, now)
        if isinstance(event, UpdateEncoded):
            return self._on_encoded(event, now)
        if isinstance(event, TooFewExamples):
            return []
        if isinstance(event, (HeadInstalled, HeadInstallFailed)):
            return self._on_install_result(event)
        if isinstance(event, OutboxRead):
            return self._on_outbox(event, now)
        return self._on_secure_round(event)

    # -- messages -------------------------------------------------------------------------

    def _on_message(self, event: MessageArrived, now: float) -> list[Effect]:
        try:
            kind = parse_topic(event.topic).kind
        except TopicError:
            return []
        if not event.payload or kind not in ("round", "model", "patch", "ack"):
            return []
        try:
            if kind == "round":
                return self._on_round(event.payload, now)
            if kind == "model":
                return self._on_model(event.payload)
            if kind == "patch":
                return self._on_patch(event.payload)
            return self._on_ack(event.payload)
        except FederationError as exc:
            self._refuse(exc.reason)
            return [Log({"event": "bad_message", "topic": event.topic, "error": str(exc)})]

    def _on_round(self, payload: bytes, now: float) -> list[Effect]:
        message = decode_message(payload, expected_type=RoundAnnouncement, verify_key=self._verify)
        assert isinstance(message, RoundAnnouncement)
        if message.fleet != self.config.fleet:
            return []
        self.announcement = message
        self._progress.next_sample_check = 0.0
        # once a round was open: a re-announcement with its deadline passed ends the run
        passed = message.deadline_unix <= now
        self.run_over_since = now if passed and self._saw_open_round else None
        self._saw_open_round = self._saw_open_round or not passed
        effects: list[Effect] = [
            Log({"event": "round", "round": message.round_id, "version": message.model_version})
        ]
        effects += self._maybe_rejoin(message, open_=not passed)
        earlier = [] if self._asynchronous else self._progress.in_flight  # async: still counts
        for round_id in [r for r in earlier if r < message.round_id]:
            effects += self._settle(round_id, "superseded")  # its round closed; the ack got lost
        if self.was_sent(message.round_id) and not self.is_settled(message.round_id):
            effects.append(ReadOutbox(message.round_id))  # the aggregator restarted: resend
        return effects + self._fetch_if_missing(message.model_version)

    def _fetch_if_missing(self, version: int) -> list[Effect]:
        """Ask for the full head of an announced version no patch has given us."""
        installed = self.installed_version
        if installed is not None and installed >= version:
            return []
        return self._fetch(version)

    def _fetch(self, version: int) -> list[Effect]:
        """Follow `model/{version}` once (a retained full head), unless already under way."""
        progress = self._progress
        if version in progress.fetching or version in progress.installing:
            return []
        progress.fetching.add(version)
        return [Log({"event": "fetch_full_model", "version": version}), FetchModel(version)]

    def _on_patch(self, payload: bytes) -> list[Effect]:
        patch = decode_message(payload, expected_type=ModelPatch, verify_key=self._verify)
        assert isinstance(patch, ModelPatch)
        version, installed = patch.model_version, self.installed_version
        if patch.fleet != self.config.fleet or installed is None or version <= installed:
            return []
        if patch.base_version != installed or self._installed_shapes is None:
            return []  # not our base: the announcement of this version fetches the full head
        expected = self.announcement
        if expected is not None and expected.model_version == version \
                and patch.model_sha256 != expected.model_sha256:  # fmt: skip
            self._refuse("model_hash")
            return [Log({"event": "patch_rejected", "version": version})]
        self._progress.installing[version] = (self._installed_shapes, patch.model_sha256)
        self._progress.patched.add(version)
        return [ApplyPatch(patch, ModelPrivacy(version, patch.dp_epsilon, patch.dp_delta))]

    def _maybe_rejoin(self, message: RoundAnnouncement, open_: bool) -> list[Effect]:
        """Below the installed version: one line; rejoin on the announced head (see `rejoin`)."""
        installed, version = self.installed_version, message.model_version
        self._rejoining = None
        follow = self._rejoin.should_rejoin(message.round_id, version, installed, open_)
        if installed is None or installed <= version or not open_:
            return []  # a closed round (a finished run's last, retained) is nothing to join
        lines: list[Effect] = []
        if self._said_below != message.round_id:  # once a round, if it is announced again
            self._said_below = message.round_id
            said = {"event": "round_below_installed", "round": message.round_id,
                    "version": version, "installed": installed, "rejoin": follow}  # fmt: skip
            lines.append(Log(said))
        if not follow:
            return lines
        self._rejoining = message.round_id
        model = self._rejoin.model_for(version, message.model_sha256)
        return [
            *lines,
            *(self._fetch(version) if model is None else self._install_lower(model, message)),
        ]

    def _install_lower(self, model: GlobalModel, round_: RoundAnnouncement) -> list[Effect]:
        """Install the announced lower head; rounds from this one on were another state's."""
        progress, first = self._progress, round_.round_id
        progress.sent = {r for r in progress.sent if r < first}
        progress.settled = {r for r in progress.settled if r < first}
        progress.in_flight = {r: b for r, b in progress.in_flight.items() if r < first}
        shapes = tuple(w.shape for w in model.weights)
        progress.installing[model.model_version] = (shapes, round_.model_sha256)
        stamp = ModelPrivacy(model.model_version, model.dp_epsilon, model.dp_delta)
        return [ForgetRounds(first), InstallHead(model.model_version, model.weights, stamp)]

    def _on_lower_model(self, message: GlobalModel) -> list[Effect]:
        """A model below the installed version: the head to rejoin on, or kept until announced."""
        sha, round_ = message_sha256(message.weights), self.announcement
        if round_ is None or self._rejoining != round_.round_id \
                or round_.model_version != message.model_version:  # fmt: skip
            self._rejoin.remember(message, sha)
            return []
        if sha != round_.model_sha256:
            self._refuse("model_hash")
            return [Log({"event": "model_rejected", "version": message.model_version})]
        return self._install_lower(message, round_)

    def _on_model(self, payload: bytes) -> list[Effect]:
        shapes = None if self._installed_shapes is None else list(self._installed_shapes)
        message = decode_message(payload, expected_type=GlobalModel, expected_shapes=shapes,
                                 verify_key=self._verify)  # fmt: skip
        assert isinstance(message, GlobalModel)
        version = message.model_version
        if self.installed_version is not None and version < self.installed_version:
            return self._on_lower_model(message)
        if self.installed_version is not None and version <= self.installed_version:
            return []
        sha = message_sha256(message.weights)
        expected = self.announcement
        if expected is not None and expected.model_version == version \
                and sha != expected.model_sha256:  # fmt: skip
            self._refuse("model_hash")
            return [Log({"event": "model_rejected", "version": version})]
        self._progress.installing[version] = (tuple(w.shape for w in message.weights), sha)
        stamp = ModelPrivacy(version, message.dp_epsilon, message.dp_delta)
        return [InstallHead(version, message.weights, stamp)]

    def _on_ack(self, payload: bytes) -> list[Effect]:
        ack = decode_signed_by_any(payload, UpdateAck, self._verify_acks)
        assert isinstance(ack, UpdateAck)
        if ack.device_id != self.config.device_id or self.is_settled(ack.round_id):
            return []
        self._progress.settled.add(ack.round_id)
        self.rounds_acked += int(ack.accepted)
        outcome = "accepted" if ack.accepted else ack.reason
        stop: list[Effect] = []
        if outcome == PRIVACY_BUDGET and not self.privacy_budget_spent:
            self.privacy_budget_spent = True
            stop = [Log({"event": "privacy_budget_spent", "round": ack.round_id})]
        return [*stop,
            RecordAck(ack.round_id, outcome),
            *self._settle(ack.round_id, None),
            Log({"event": "ack", "round": ack.round_id, "accepted": ack.accepted,
                 "reason": ack.reason}),
        ]  # fmt: skip

    # -- replies ----------------------------------------------------------------------------

    def _on_install_result(self, event: HeadInstalled | HeadInstallFailed) -> list[Effect]:
        shapes, sha = self._progress.installing.pop(event.version, ((), ""))
        from_patch = event.version in self._progress.patched
        self._progress.patched.discard(event.version)
        if isinstance(event, HeadInstallFailed):  # no valid head: keep the old one
            self._refuse("patch" if from_patch else "install")
            log = Log({"event": "bad_model", "version": event.version, "error": event.error})
            return [log, *(self._fetch_if_missing(event.version) if from_patch else [])]
        self.installed_version, self._installed_shapes = event.version, shapes
        self._progress.next_sample_check = 0.0
        self._rejoining = None
        effects: list[Effect] = []
        for round_id, base in list(self._progress.in_flight.items()):
            if event.version > base and not self._asynchronous:
                effects += self._settle(round_id, "superseded")
        effects.append(Log({"event": "installed", "version": event.version, "sha256": sha,
                            "from": "patch" if from_patch else "full"}))  # fmt: skip
        effects.append(self.status(True))
        return effects

    def _on_counted(self, event: LabelledCounted, now: float) -> list[Effect]:
        round_ = self.announcement
        if round_ is None or event.count < self.config.min_samples or not self._can_train(now):
            return []
        seed = round_seed(self.config.seed, self.config.device_id, round_.round_id)
        return [TrainForRound(round_, seed)]

    def _on_encoded(self, event: UpdateEncoded, now: float) -> list[Effect]:
        round_ = self.announcement
        if round_ is None or round_.round_id != event.round_id or self.was_sent(event.round_id):
            return [Log({"event": "update_discarded", "round": event.round_id})]
        progress = self._progress
        progress.sent.add(event.round_id)
        progress.in_flight[event.round_id] = event.base_version
        progress.last_send = now
        return [
            WriteOutbox(event.round_id, event.payload),
            RecordRoundSent(event.round_id, event.base_version, event.sequence,
                            event.num_examples),
            Log({"event": "update", "round": event.round_id, "sequence": event.sequence,
                 "num_examples": event.num_examples, "bytes": len(event.payload)}),
            *self._publishes(event.payload, now),
        ]  # fmt: skip

    def _on_outbox(self, event: OutboxRead, now: float) -> list[Effect]:
        round_ = self.announcement
        self._progress.last_send = now  # the next attempt waits a full timeout either way
        if event.payload is None:
            return [Log({"event": "outbox_missing", "round": event.round_id})]
        if round_ is None or round_.round_id != event.round_id:
            return []
        self._progress.in_flight[event.round_id] = round_.model_version
        return [Log({"event": "resend", "round": event.round_id}),
                *self._publishes(event.payload, now)]  # fmt: skip

    def _on_secure_round(self, event: SecureRoundAnswered) -> list[Effect]:
        self._progress.settled.add(event.round_id)
        self.rounds_acked += 1
        return [RecordAck(event.round_id, "secure"),
                Log({"event": "secure_round", "round": event.round_id})]  # fmt: skip

    # -- time -------------------------------------------------------------------------------

    def _on_tick(self, now: float) -> list[Effect]:
        """Resend an un-acked update after the timeout, or ask whether we can train."""
        round_ = self.announcement
        progress = self._progress
        if round_ is None:
            return []
        if self.was_sent(round_.round_id):
            overdue = (progress.last_send or 0.0) + self.config.ack_timeout_s <= now
            if self.is_settled(round_.round_id) or not overdue:
                return []
            return [ReadOutbox(round_.round_id)]
        if not self._can_train(now) or now < progress.next_sample_check:
            return []
        progress.next_sample_check = now + SAMPLE_CHECK_S
        return [CountLabelled()]

    def _can_train(self, now: float) -> bool:
        round_ = self.announcement
        return (
            round_ is not None
            and not self.was_sent(round_.round_id)
            and (self._asynchronous or now <= round_.deadline_unix)
            and self.installed_version == round_.model_version
            and not self.privacy_budget_spent
            and is_sampled(round_.sampling_seed or "", round_.round_id, self.config.device_id,
                           1.0 if round_.sampling_rate is None else round_.sampling_rate)
        )  # fmt: skip

    # -- helpers ----------------------------------------------------------------------------

    @property
    def _asynchronous(self) -> bool:
        """Buffered asynchronous rounds: no deadline, and an older update is still welcome
        (up to the announced staleness cap) until its own ack settles it."""
        return self.announcement is not None and self.announcement.max_staleness is not None

    def _settle(self, round_id: int, reason: str | None) -> list[Effect]:
        """A round this process sent is over: acked, or (reason) known closed without an ack."""
        if self._progress.in_flight.pop(round_id, None) is None:
            return []
        self.rounds_settled += 1
        if reason is None or self.is_settled(round_id):
            return []
        self._progress.settled.add(round_id)  # stop resending it
        return [RecordAck(round_id, reason),
                Log({"event": "settled", "round": round_id, "reason": reason})]  # fmt: skip

    def _publishes(self, payload: bytes, now: float) -> list[Effect]:
        """The update as one publish, or as chunks when it exceeds `max_message_bytes`."""
        topic = update_topic(self.config.fleet, self.config.device_id)
        if len(payload) <= self.config.max_message_bytes:
            return [Publish(topic, payload)]
        message_id = f"{self.config.device_id}.{int(now * 1000)}"
        pieces = split_into_chunks(payload, message_id, self.config.max_message_bytes)
        return [Publish(topic, piece) for piece in pieces]

    def _refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
