"""The device's round core, driven event by event with a fake clock: no broker, no sleeping."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_runtime.round_core import (
    SAMPLE_CHECK_S,
    ClientConfig,
    DeviceSnapshot,
    RoundCore,
    round_seed,
)
from edge_runtime.round_events import (
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
from fleet_protocol.aggregator_identity import aggregator_verifier
from fleet_protocol.chunking import ChunkAssembler
from fleet_protocol.messages import DeviceStatus, GlobalModel, RoundAnnouncement, UpdateAck
from fleet_protocol.publish import Publish
from fleet_protocol.signing import generate_signing_key, public_key_to_bytes
from fleet_protocol.topics import ack_topic, model_topic, round_topic, status_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message, message_sha256

FLEET, DEVICE = "ward", "dev-1"
TIMEOUT_S = 15.0
SHAPES = [(4, 3), (3,), (3, 2), (2,)]
UPDATE_BYTES = b"signed-update-of-round"


def _head(value: float) -> list[np.ndarray]:
    return [np.full(shape, value, np.float32) for shape in SHAPES]


def _config(**overrides: object) -> ClientConfig:
    options: dict[str, object] = {"min_samples": 8, "ack_timeout_s": TIMEOUT_S, **overrides}
    return ClientConfig(FLEET, DEVICE, **options)  # type: ignore[arg-type]


def _installed(version: int, **rest: object) -> DeviceSnapshot:
    return DeviceSnapshot(version, tuple(SHAPES), **rest)  # type: ignore[arg-type]


def _round(round_id: int, version: int, deadline: float = 1000.0, *, sha: str | None = None,
           key: Ed25519PrivateKey | None = None, fleet: str = FLEET) -> MessageArrived:  # fmt: skip
    sha = sha if sha is not None else message_sha256(_head(float(version)))
    announcement = RoundAnnouncement(fleet, round_id, version, sha, deadline, 1)
    return MessageArrived(round_topic(FLEET), encode_message(announcement, signing_key=key))


def _model(version: int, weights: list[np.ndarray] | None = None,
           key: Ed25519PrivateKey | None = None) -> MessageArrived:  # fmt: skip
    weights = weights if weights is not None else _head(float(version))
    model = GlobalModel(FLEET, version, weights, None, version)
    return MessageArrived(model_topic(FLEET, version), encode_message(model, signing_key=key))


def _ack(round_id: int, accepted: bool = True, reason: str = "", device: str = DEVICE,
         key: Ed25519PrivateKey | None = None) -> MessageArrived:  # fmt: skip
    ack = UpdateAck(FLEET, round_id, device, 1, accepted, reason)
    return MessageArrived(ack_topic(FLEET, device), encode_message(ack, signing_key=key))


@dataclass
class Shell:
    """The test's shell: answers the core's requests from canned facts and keeps every effect."""

    core: RoundCore
    labelled: int = 20
    usable: int = 20
    payload: bytes = UPDATE_BYTES
    outbox: dict[int, bytes] = field(default_factory=dict)
    install_fails: bool = False
    effects: list[Effect] = field(default_factory=list)

    def feed(self, event: Event, now: float) -> list[Effect]:
        """One event and every reply it leads to; the effects of this call, in order."""
        done: list[Effect] = []
        pending = [event]
        while pending:
            for effect in self.core.handle(pending.pop(0), now):
                done.append(effect)
                reply = self._reply(effect)
                if reply is not None:
                    pending.append(reply)
        self.effects += done
        return done

    def _reply(self, effect: Effect) -> Event | None:
        if isinstance(effect, CountLabelled):
            return LabelledCounted(self.labelled)
        if isinstance(effect, TrainForRound):
            round_ = effect.announcement
            if self.usable < self.core.config.min_samples:
                return TooFewExamples(round_.round_id, self.usable)
            return UpdateEncoded(round_.round_id, round_.model_version, 7, self.usable,
                                 self.payload)  # fmt: skip
        if isinstance(effect, WriteOutbox):
            self.outbox[effect.round_id] = effect.payload
        if isinstance(effect, ReadOutbox):
            return OutboxRead(effect.round_id, self.outbox.get(effect.round_id))
        if isinstance(effect, InstallHead):
            if self.install_fails:
                return HeadInstallFailed(effect.version, "not a head")
            return HeadInstalled(effect.version)
        return None


def _shell(snapshot: DeviceSnapshot | None = None, verify_with: Ed25519PrivateKey | None = None,
           **config: object) -> Shell:  # fmt: skip
    verify = None
    if verify_with is not None:
        verify = aggregator_verifier(public_key_to_bytes(verify_with.public_key()))
    core = RoundCore(_config(**config), snapshot or _installed(0), verify)
    return Shell(core)


def _of(kind: type, effects: list[Effect]) -> list[Effect]:
    return [e for e in effects if isinstance(e, kind)]


def _updates(effects: list[Effect]) -> list[Publish]:
    topic = update_topic(FLEET, DEVICE)
    return [e for e in effects if isinstance(e, Publish) and e.topic == topic]


def _logged(effects: list[Effect], name: str) -> list[Log]:
    return [e for e in effects if isinstance(e, Log) and e.record.get("event") == name]


def _sent_round_1(shell: Shell, now: float = 100.0) -> list[Effect]:
    shell.feed(_round(1, 0), now)
    return shell.feed(Tick(), now)


# -- taking part ----------------------------------------------------------------------------


def test_connect_publishes_online_status_with_installed_version() -> None:
    # Execute
    (status,) = _shell(_installed(3)).feed(Connected(), 0.0)

    # Assert
    assert isinstance(status, Publish) and status.retain
    assert status.topic == status_topic(FLEET, DEVICE)
    message = decode_message(status.payload, expected_type=DeviceStatus)
    assert isinstance(message, DeviceStatus)
    assert (message.online, message.model_version) == (True, 3)


def test_update_is_persisted_before_it_is_published() -> None:
    # Prepare
    shell = _shell()

    # Execute
    effects = _sent_round_1(shell)

    # Assert
    kinds = [type(e) for e in effects if not isinstance(e, Log)]
    assert kinds == [CountLabelled, TrainForRound, WriteOutbox, RecordRoundSent, Publish]
    (train,) = _of(TrainForRound, effects)
    assert isinstance(train, TrainForRound)
    assert train.seed == round_seed(0, DEVICE, 1)
    assert _of(RecordRoundSent, effects) == [RecordRoundSent(1, 0, 7, 20)]
    assert [p.payload for p in _updates(effects)] == [UPDATE_BYTES]
    assert shell.core.was_sent(1)


def test_too_few_labelled_windows_waits_and_counts_again_after_a_second() -> None:
    # Prepare
    shell = _shell()
    shell.labelled = 5
    shell.feed(_round(1, 0), 100.0)

    # Execute
    first = shell.feed(Tick(), 100.0)
    soon = shell.feed(Tick(), 100.0 + SAMPLE_CHECK_S / 2)
    shell.labelled = 20
    later = shell.feed(Tick(), 100.0 + SAMPLE_CHECK_S)

    # Assert
    assert _of(CountLabelled, first) and not _of(TrainForRound, first)
    assert soon == []
    assert _of(TrainForRound, later) and _updates(later)


def test_labelled_rows_without_embeddings_are_too_few_and_send_nothing() -> None:
    # Prepare
    shell = _shell()
    shell.usable = 3

    # Execute
    effects = _sent_round_1(shell)

    # Assert
    assert _of(TrainForRound, effects) and not _updates(effects)
    assert not shell.core.was_sent(1)


def test_a_round_past_its_deadline_is_not_joined() -> None:
    # Prepare
    shell = _shell()
    shell.feed(_round(1, 0, deadline=100.0), 50.0)

    # Execute
    at_deadline = shell.feed(Tick(), 100.0)
    late = shell.feed(Tick(), 100.5)

    # Assert
    assert _updates(at_deadline)  # the deadline itself still counts
    assert late == []


def test_the_round_waits_for_its_model_then_trains_on_it() -> None:
    # Prepare: version 0 installed, round 2 is on version 1
    shell = _shell()
    shell.feed(_round(2, 1), 100.0)

    # Execute
    before = shell.feed(Tick(), 100.0)
    install = shell.feed(_model(1), 101.0)
    after = shell.feed(Tick(), 101.0)

    # Assert
    assert before == []
    assert _of(InstallHead, install) and _of(Publish, install)  # status with version 1
    assert shell.core.installed_version == 1
    assert _of(RecordRoundSent, after) == [RecordRoundSent(2, 1, 7, 20)]


def test_an_update_for_a_round_no_longer_announced_is_discarded() -> None:
    # Prepare
    shell = _shell()
    shell.feed(_round(2, 0), 100.0)

    # Execute
    effects = shell.feed(UpdateEncoded(1, 0, 7, 20, UPDATE_BYTES), 100.0)

    # Assert
    assert _logged(effects, "update_discarded") and not _updates(effects)
    assert not shell.core.was_sent(1)


def test_a_large_update_travels_as_chunks_that_reassemble_to_the_same_bytes() -> None:
    # Prepare
    shell = _shell(max_message_bytes=256)
    shell.payload = bytes(range(256)) * 8

    # Execute
    pieces = _updates(_sent_round_1(shell))

    # Assert
    assert len(pieces) > 1 and all(len(p.payload) <= 256 for p in pieces)
    assembler = ChunkAssembler()
    results = [assembler.feed(p.payload, source=p.topic) for p in pieces]
    assert results[-1] == shell.payload and results[:-1] == [None] * (len(pieces) - 1)


# -- acks, resends, restarts ----------------------------------------------------------------


def test_an_unacked_update_is_resent_with_the_same_bytes_after_the_timeout() -> None:
    # Prepare
    shell = _shell()
    _sent_round_1(shell, now=100.0)

    # Execute
    early = shell.feed(Tick(), 100.0 + TIMEOUT_S - 0.01)
    due = shell.feed(Tick(), 100.0 + TIMEOUT_S)
    again_early = shell.feed(Tick(), 100.0 + 2 * TIMEOUT_S - 0.01)
    again = shell.feed(Tick(), 100.0 + 2 * TIMEOUT_S)

    # Assert
    assert early == [] and again_early == []
    assert [p.payload for p in _updates(due)] == [UPDATE_BYTES]
    assert [p.payload for p in _updates(again)] == [UPDATE_BYTES]
    assert not _of(TrainForRound, due + again)


def test_an_accepted_ack_stops_resends_and_counts_once() -> None:
    # Prepare
    shell = _shell()
    _sent_round_1(shell)

    # Execute
    first = shell.feed(_ack(1), 101.0)
    duplicate = shell.feed(_ack(1), 102.0)
    later = shell.feed(Tick(), 100.0 + 10 * TIMEOUT_S)

    # Assert
    assert _of(RecordAck, first) == [RecordAck(1, "accepted")]
    assert duplicate == [] and later == []
    assert (shell.core.rounds_acked, shell.core.rounds_done) == (1, 1)


def test_a_refused_ack_is_recorded_with_its_reason_and_ends_the_round() -> None:
    # Prepare
    shell = _shell()
    _sent_round_1(shell)

    # Execute
    effects = shell.feed(_ack(1, accepted=False, reason="stale"), 101.0)
    later = shell.feed(Tick(), 100.0 + 10 * TIMEOUT_S)

    # Assert
    assert _of(RecordAck, effects) == [RecordAck(1, "stale")]
    assert later == []
    assert (shell.core.rounds_acked, shell.core.rounds_done) == (0, 1)


def test_an_ack_for_another_device_is_ignored() -> None:
    # Prepare
    shell = _shell()
    _sent_round_1(shell)

    # Execute
    effects = shell.feed(_ack(1, device="dev-2"), 101.0)

    # Assert
    assert effects == []
    assert not shell.core.is_settled(1)


def test_after_a_restart_an_unacked_round_is_resent_from_the_outbox_never_retrained() -> None:
    # Prepare: the last process sent round 1 and died before the ack
    shell = _shell(_installed(0, sent_rounds=frozenset({1})))
    shell.outbox[1] = b"bytes-from-before-the-restart"

    # Execute
    on_round = shell.feed(_round(1, 0), 500.0)
    tick = shell.feed(Tick(), 500.0)

    # Assert
    assert _of(ReadOutbox, on_round) == [ReadOutbox(1)]
    assert [p.payload for p in _updates(on_round)] == [b"bytes-from-before-the-restart"]
    assert tick == []
    assert not _of(TrainForRound, shell.effects) and not _of(WriteOutbox, shell.effects)


def test_after_a_restart_a_settled_round_is_neither_resent_nor_retrained() -> None:
    # Prepare
    snapshot = _installed(0, sent_rounds=frozenset({1}), settled_rounds=frozenset({1}))
    shell = _shell(snapshot)

    # Execute
    effects = shell.feed(_round(1, 0), 500.0) + shell.feed(Tick(), 600.0)

    # Assert
    assert not _of(ReadOutbox, effects) and not _updates(effects)
    assert not _of(CountLabelled, effects)


def test_the_same_round_delivered_again_resends_the_same_bytes_until_acked() -> None:
    # Prepare: a retained round redelivered after a reconnect (the aggregator restarted)
    shell = _shell()
    _sent_round_1(shell)

    # Execute
    redelivered = shell.feed(_round(1, 0), 103.0)
    shell.feed(_ack(1), 104.0)
    after_ack = shell.feed(_round(1, 0), 105.0)

    # Assert
    assert [p.payload for p in _updates(redelivered)] == [UPDATE_BYTES]
    assert not _updates(after_ack)


def test_a_missing_outbox_is_reported_once_per_timeout() -> None:
    # Prepare
    shell = _shell(_installed(0, sent_rounds=frozenset({1})))

    # Execute
    on_round = shell.feed(_round(1, 0), 500.0)
    soon = shell.feed(Tick(), 501.0)
    due = shell.feed(Tick(), 500.0 + TIMEOUT_S + 1.0)

    # Assert
    assert _logged(on_round, "outbox_missing") and soon == []
    assert _logged(due, "outbox_missing") and not _updates(due)


def test_a_newer_round_settles_a_sent_round_whose_ack_was_lost() -> None:
    # Prepare
    shell = _shell()
    _sent_round_1(shell)

    # Execute
    effects = shell.feed(_round(2, 0), 200.0)

    # Assert
    assert _of(RecordAck, effects) == [RecordAck(1, "superseded")]
    assert shell.core.rounds_done == 1 and shell.core.rounds_acked == 0


def test_a_newer_model_settles_a_sent_round_whose_ack_was_lost() -> None:
    # Prepare
    shell = _shell()
    _sent_round_1(shell)

    # Execute
    effects = shell.feed(_model(1), 200.0)

    # Assert
    assert _of(RecordAck, effects) == [RecordAck(1, "superseded")]
    assert shell.core.rounds_done == 1


def test_a_secure_round_counts_as_done() -> None:
    # Prepare
    shell = _shell()

    # Execute
    effects = shell.feed(SecureRoundAnswered(4), 10.0)

    # Assert
    assert _of(RecordAck, effects) == [RecordAck(4, "secure")]
    assert shell.core.rounds_acked == 1 and shell.core.is_settled(4)


# -- models -----------------------------------------------------------------------------------


def test_a_model_whose_hash_differs_from_the_announcement_is_not_installed() -> None:
    # Prepare
    shell = _shell(DeviceSnapshot())
    shell.feed(_round(1, 0, sha="0" * 64), 100.0)

    # Execute
    effects = shell.feed(_model(0), 100.0)
    tick = shell.feed(Tick(), 100.0)

    # Assert
    assert _logged(effects, "model_rejected") and not _of(InstallHead, effects)
    assert shell.core.refused == {"model_hash": 1}
    assert shell.core.installed_version is None and tick == []


def test_a_model_before_any_announcement_installs_without_a_hash_to_check() -> None:
    # Execute
    effects = _shell(DeviceSnapshot()).feed(_model(0), 1.0)

    # Assert
    (install,) = _of(InstallHead, effects)
    assert isinstance(install, InstallHead) and install.version == 0
    assert _logged(effects, "installed")


def test_an_older_or_equal_model_is_ignored() -> None:
    # Prepare
    shell = _shell(_installed(3))

    # Execute
    effects = shell.feed(_model(3), 1.0) + shell.feed(_model(2), 1.0)

    # Assert
    assert effects == []


def test_a_model_of_another_shape_is_refused_by_reason() -> None:
    # Prepare
    shell = _shell(_installed(0))
    other = [np.zeros((4, 2), np.float32), np.zeros(2, np.float32)]

    # Execute
    effects = shell.feed(_model(1, other), 1.0)

    # Assert
    assert _logged(effects, "bad_message") and shell.core.refused == {"shape": 1}
    assert shell.core.installed_version == 0


def test_a_failed_install_keeps_the_old_head_and_is_counted() -> None:
    # Prepare
    shell = _shell(_installed(0))
    shell.install_fails = True

    # Execute
    effects = shell.feed(_model(1), 1.0)

    # Assert
    assert _logged(effects, "bad_model") and shell.core.refused == {"install": 1}
    assert shell.core.installed_version == 0
    assert not _of(Publish, effects)


def test_a_device_above_the_announced_version_rejoins_and_takes_part() -> None:
    # Prepare: version 5 installed, rounds 1-5 sent and acked under an earlier state file
    old = frozenset(range(1, 6))
    shell = _shell(_installed(5, sent_rounds=old, settled_rounds=old))

    # Execute: a fresh aggregator announces round 1 on version 0, then its model arrives
    below = shell.feed(_round(1, 0), 100.0)
    installed = shell.feed(_model(0), 100.5)
    joined = shell.feed(Tick(), 101.0)

    # Assert
    (record,) = _logged(below, "round_below_installed")
    assert record.record == {"event": "round_below_installed", "round": 1, "version": 0,
                             "installed": 5, "rejoin": True}  # fmt: skip
    assert FetchModel(0) in below  # the full head of the announced version, retained
    assert _of(ForgetRounds, installed) == [ForgetRounds(1)]
    assert [e.version for e in _of(InstallHead, installed)] == [0]
    assert shell.core.installed_version == 0 and not shell.core.was_sent(2)
    assert [e.round_id for e in _of(RecordRoundSent, joined)] == [1]  # it takes part
    assert len(_updates(joined)) == 1


def test_a_lower_model_arriving_before_its_announcement_is_remembered() -> None:
    # Prepare: retained messages come in any order
    shell = _shell(_installed(5))

    # Execute
    early = shell.feed(_model(0), 100.0)
    announced = shell.feed(_round(1, 0), 100.5)

    # Assert
    assert early == []
    assert _of(ForgetRounds, announced) == [ForgetRounds(1)]
    assert [e.version for e in _of(InstallHead, announced)] == [0]
    assert shell.core.installed_version == 0


def test_a_lower_model_whose_hash_is_not_the_announced_one_is_refused() -> None:
    # Prepare
    shell = _shell(_installed(5))
    shell.feed(_round(1, 0, sha="0" * 64), 100.0)

    # Execute
    effects = shell.feed(_model(0), 100.5) + shell.feed(Tick(), 101.0)

    # Assert
    assert _logged(effects, "model_rejected") and shell.core.refused == {"model_hash": 1}
    assert shell.core.installed_version == 5 and not _of(InstallHead, effects)


def test_a_running_device_follows_a_reset_aggregator_from_its_second_round() -> None:
    # Prepare: round 5 on the installed version 5 was under way
    shell = _shell(_installed(5))
    shell.feed(_round(5, 5), 100.0)

    # Execute: a reset aggregator announces round 1, then round 2, on version 0
    first = shell.feed(_round(1, 0), 200.0) + shell.feed(_model(0), 200.0)
    second = shell.feed(_round(2, 0), 300.0)

    # Assert: one round could be a late redelivery; two in a row are the aggregator's numbering
    assert [r.record["rejoin"] for r in _logged(first, "round_below_installed")] == [False]
    assert not _of(InstallHead, first)
    assert [e.version for e in _of(InstallHead, second)] == [0]


def test_an_announcement_whose_deadline_passed_says_the_run_is_over() -> None:
    # Prepare
    shell = _shell(_installed(0))

    # Execute / Assert: a stale retained announcement (no open round seen yet) says nothing
    shell.feed(_round(4, 0, deadline=50.0), 60.0)
    assert shell.core.run_over_since is None
    # the aggregator re-announces its last round, deadline passed, when its run is done
    shell.feed(_round(5, 0, deadline=90.0), 80.0)
    assert shell.core.run_over_since is None
    shell.feed(_round(5, 0, deadline=90.0), 95.0)
    assert shell.core.run_over_since == 95.0
    shell.feed(_round(6, 0, deadline=200.0), 96.0)
    assert shell.core.run_over_since is None


# -- authenticity and foreign traffic -----------------------------------------------------


def test_with_the_aggregator_key_unsigned_and_forged_messages_are_refused_by_reason() -> None:
    # Prepare
    aggregator, mallory = generate_signing_key(), generate_signing_key()
    shell = _shell(_installed(0), verify_with=aggregator)
    hostile = [
        _round(1, 1),
        _round(1, 1, key=mallory),
        _model(1),
        _model(1, key=mallory),
        _ack(1),
        _ack(1, key=mallory),
    ]

    # Execute
    refused = [e for message in hostile for e in shell.feed(message, 100.0)]
    genuine = shell.feed(_round(1, 1, key=aggregator), 100.0)
    genuine += shell.feed(_model(1, key=aggregator), 100.0)

    # Assert
    assert all(isinstance(e, Log) and e.record["event"] == "bad_message" for e in refused)
    assert shell.core.refused == {"signature": 6}
    assert _of(InstallHead, genuine) and shell.core.installed_version == 1


def test_with_a_site_ack_key_acks_are_the_sites_and_rounds_stay_the_coordinators() -> None:
    # Prepare: the coordinator signs rounds and models, the site aggregator its acks
    coordinator, site = generate_signing_key(), generate_signing_key()
    verify = aggregator_verifier(public_key_to_bytes(coordinator.public_key()))
    ack_verify = aggregator_verifier(public_key_to_bytes(site.public_key()))
    shell = Shell(RoundCore(_config(), _installed(0), verify, None, (ack_verify,)))
    shell.feed(_round(1, 0, key=coordinator), 100.0)
    shell.feed(Tick(), 100.0)

    # Execute: the site's key cannot sign a round, nor the coordinator's an ack
    forged_round = shell.feed(_round(2, 0, key=site), 101.0)
    coordinators_ack = shell.feed(_ack(1, key=coordinator), 101.0)
    sites_ack = shell.feed(_ack(1, key=site), 102.0)

    # Assert
    assert shell.core.refused == {"signature": 2}
    assert not _of(RecordAck, forged_round + coordinators_ack)
    assert _of(RecordAck, sites_ack) == [RecordAck(1, "accepted")]
    assert shell.core.announcement is not None and shell.core.announcement.round_id == 1


@pytest.mark.parametrize("signer", [0, 1])
def test_with_several_worker_keys_an_ack_any_of_them_signed_is_taken(signer: int) -> None:
    # Prepare: two workers with keys of their own ack on one broker; mallory is neither
    coordinator, mallory = generate_signing_key(), generate_signing_key()
    workers = (generate_signing_key(), generate_signing_key())
    verify = aggregator_verifier(public_key_to_bytes(coordinator.public_key()))
    ack_verify = tuple(aggregator_verifier(public_key_to_bytes(w.public_key())) for w in workers)
    shell = Shell(RoundCore(_config(), _installed(0), verify, None, ack_verify))
    shell.feed(_round(1, 0, key=coordinator), 100.0)
    shell.feed(Tick(), 100.0)

    # Execute
    forged = shell.feed(_ack(1, key=mallory), 101.0)
    genuine = shell.feed(_ack(1, key=workers[signer]), 102.0)

    # Assert
    assert shell.core.refused == {"signature": 1} and not _of(RecordAck, forged)
    assert _of(RecordAck, genuine) == [RecordAck(1, "accepted")]


def test_foreign_topics_other_fleets_and_empty_payloads_change_nothing() -> None:
    # Prepare
    shell = _shell()
    events: list[Event] = [
        MessageArrived("somewhere/else", b"x"),
        MessageArrived(round_topic(FLEET), b""),
        _round(1, 0, fleet="other"),
        MessageArrived(f"iomt/v1/{FLEET}/status/{DEVICE}", b"x"),
    ]

    # Execute
    effects = [e for event in events for e in shell.feed(event, 1.0)]

    # Assert
    assert effects == [] and shell.core.announcement is None


@pytest.mark.parametrize("payload", [b"\x00garbage", b"\x81\xa1v\x02"])
def test_garbage_on_the_round_topic_is_refused_not_raised(payload: bytes) -> None:
    # Execute
    shell = _shell()
    effects = shell.feed(MessageArrived(round_topic(FLEET), payload), 1.0)

    # Assert
    assert _logged(effects, "bad_message") and sum(shell.core.refused.values()) == 1


def test_a_late_older_round_after_a_newer_model_is_logged_and_not_joined() -> None:
    # Prepare: round 2 on version 1 is under way; the retained round 1 (version 0) shows up late
    shell = _shell(_installed(1))
    shell.feed(_round(2, 1), 100.0)

    # Execute
    late = shell.feed(_round(1, 0), 101.0)
    tick = shell.feed(Tick(), 101.0)

    # Assert
    (record,) = _logged(late, "round_below_installed")
    assert record.record["rejoin"] is False  # not followed: a redelivery, not a reset
    assert tick == [] and not shell.core.was_sent(1)


def test_an_ack_before_the_update_was_sent_here_is_recorded_and_never_resent() -> None:
    # Prepare: a restarted device whose last process sent round 1; the ack was queued for it
    shell = _shell(_installed(0, sent_rounds=frozenset({1})))

    # Execute
    ack = shell.feed(_ack(1), 100.0)
    later = shell.feed(_round(1, 0), 101.0) + shell.feed(Tick(), 500.0)

    # Assert
    assert _of(RecordAck, ack) == [RecordAck(1, "accepted")]
    assert not _of(ReadOutbox, later) and not _updates(later)


# -- asynchronous (buffered) rounds ------------------------------------------------------------


def _async_round(round_id: int, version: int, deadline: float = 10.0) -> MessageArrived:
    sha = message_sha256(_head(float(version)))
    announcement = RoundAnnouncement(FLEET, round_id, version, sha, deadline, 2, max_staleness=3)
    return MessageArrived(round_topic(FLEET), encode_message(announcement))


def test_an_asynchronous_round_has_no_deadline_for_the_device() -> None:
    # Prepare
    shell = _shell()
    shell.feed(_async_round(1, 0, deadline=10.0), 50.0)

    # Execute
    effects = shell.feed(Tick(), 500.0)

    # Assert
    assert _updates(effects)


def test_in_async_mode_a_newer_version_does_not_supersede_the_update_in_flight() -> None:
    # Prepare: round 1's update is sent; versions move on before its ack arrives
    shell = _shell()
    shell.feed(_async_round(1, 0), 100.0)
    shell.feed(Tick(), 100.0)

    # Execute
    moved_on = shell.feed(_async_round(2, 1), 101.0) + shell.feed(_model(1), 101.0)
    acked = shell.feed(_ack(1), 102.0)
    retrained = shell.feed(Tick(), 103.0)

    # Assert: the stale update still counts when its ack says so; the device trains on version 1
    assert _of(RecordAck, moved_on) == []
    assert _of(RecordAck, acked) == [RecordAck(1, "accepted")] and shell.core.rounds_acked == 1
    assert _of(TrainForRound, retrained)[0].announcement.model_version == 1  # type: ignore[attr-defined]
