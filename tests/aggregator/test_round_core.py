"""The aggregator's round core driven event by event with a fake clock: no broker, no sleeping.

Covers opening and announcing, quorum and deadlines, late, duplicate, stale and replayed
updates, resends of acked bytes, malformed and forged payloads, restarts from the stored state
(mid-round and between rounds), the last round, and secure-aggregation rounds with dropouts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgpack
import numpy as np
import pytest

from aggregator.core_config import AggregatorConfig, Trust
from aggregator.round_core import AggregatorCore
from aggregator.round_events import (
    Effect,
    Log,
    MessageArrived,
    RoundClosed,
    StoreAcceptedUpdate,
    StoreClosedRound,
    StoreOpenedRound,
    StoreRejection,
    StoreVersion,
    TimePassed,
)
from aggregator.round_memory import RoundMemory, read_snapshot
from aggregator.secure_aggregation.service_round import SecureAggOptions
from aggregator.service import apply_to_store
from aggregator.state_store import StateStore
from aggregator.strategies import make_strategy
from fleet_protocol.aggregator_identity import aggregator_verifier
from fleet_protocol.messages import (
    DeviceStatus,
    GlobalModel,
    ModelPatch,
    ModelUpdate,
    RoundAnnouncement,
    UpdateAck,
)
from fleet_protocol.model_patch import apply_patch
from fleet_protocol.publish import Publish
from fleet_protocol.secure_aggregation.client import encode_weighted_update
from fleet_protocol.secure_aggregation.participant import SecAggParticipant
from fleet_protocol.signing import generate_signing_key, public_key_to_bytes
from fleet_protocol.topics import (
    ack_topic,
    model_topic,
    patch_topic,
    round_topic,
    status_topic,
    update_topic,
)
from fleet_protocol.wire import decode_message, encode_message, message_sha256

FLEET = "core"
HEAD = [np.zeros((4, 2), np.float32), np.zeros(2, np.float32)]
DEADLINE = 30.0


def _config(**changes: object) -> AggregatorConfig:
    values: dict[str, object] = {"fleet": FLEET, "rounds": 3, "min_clients": 2,
                                 "deadline_s": DEADLINE, "codec": "float32"}  # fmt: skip
    values.update(changes)
    return AggregatorConfig(**values)  # type: ignore[arg-type]


def _core(memory: RoundMemory | None = None, **options: object) -> AggregatorCore:
    config = options.pop("config", None) or _config()
    return AggregatorCore(config, make_strategy("fedavg"), memory or RoundMemory(), HEAD,
                          **options)  # type: ignore[arg-type]  # fmt: skip


def _published(effects: list[Effect], topic: str) -> list[Publish]:
    return [e for e in effects if isinstance(e, Publish) and e.topic == topic]


def _round(effects: list[Effect]) -> RoundAnnouncement:
    message = decode_message(_published(effects, round_topic(FLEET))[-1].payload)
    assert isinstance(message, RoundAnnouncement)
    return message


def _status(device: str, online: bool = True) -> MessageArrived:
    payload = encode_message(DeviceStatus(FLEET, device, online, 0))
    return MessageArrived(status_topic(FLEET, device), payload)


def _update(device: str, round_: RoundAnnouncement, sequence: int = 1, value: float = 1.0,
            num_examples: int = 10, key: object = None) -> MessageArrived:  # fmt: skip
    delta = [np.full(w.shape, value, np.float32) for w in HEAD]
    update = ModelUpdate(FLEET, round_.round_id, round_.model_version, device, sequence,
                         num_examples, delta)  # fmt: skip
    payload = encode_message(update, codec="float32", signing_key=key)  # type: ignore[arg-type]
    return MessageArrived(update_topic(FLEET, device), payload)


def _acks(effects: list[Effect], device: str) -> list[UpdateAck]:
    acks = [decode_message(p.payload) for p in _published(effects, ack_topic(FLEET, device))]
    return [a for a in acks if isinstance(a, UpdateAck)]


def _closed(effects: list[Effect]) -> list[StoreClosedRound]:
    return [e for e in effects if isinstance(e, StoreClosedRound)]


def test_start_stores_version_zero_publishes_it_and_announces_round_one() -> None:
    # Execute
    effects = _core().start(now=100.0)

    # Assert
    assert isinstance(effects[0], StoreVersion) and effects[0].version == 0
    model = decode_message(_published(effects, model_topic(FLEET, 0))[0].payload)
    assert isinstance(model, GlobalModel) and model.model_version == 0
    opened = [e for e in effects if isinstance(e, StoreOpenedRound)]
    assert [o.record.round_id for o in opened] == [1]
    announcement = _round(effects)
    assert (announcement.round_id, announcement.deadline_unix, announcement.quorum) == (1, 130, 2)
    assert _published(effects, round_topic(FLEET))[0].retain


def test_quorum_with_every_online_device_in_closes_at_once_and_stores_before_publishing() -> None:
    # Prepare
    core = _core()
    round_ = _round(core.start(0.0))
    core.handle(_status("a"), 1.0)
    core.handle(_status("b"), 1.0)

    # Execute
    first = core.handle(_update("a", round_, value=1.0, num_examples=10), 2.0)
    second = core.handle(_update("b", round_, value=4.0, num_examples=30), 3.0)

    # Assert: the ack follows the commit; the new version is stored before it is published
    stored = next(i for i, e in enumerate(first) if isinstance(e, StoreAcceptedUpdate))
    acked = first.index(_published(first, ack_topic(FLEET, "a"))[0])
    assert stored < acked and _acks(first, "a")[0].accepted
    closed = _closed(second)
    assert len(closed) == 1 and closed[0].version is not None and closed[0].version.version == 1
    model_at = second.index(_published(second, model_topic(FLEET, 1))[0])
    assert second.index(closed[0]) < model_at
    np.testing.assert_allclose(closed[0].version.weights[0], 3.25)  # (10*1 + 30*4) / 40
    metrics = closed[0].metrics
    assert (metrics.status, metrics.participants, metrics.num_examples) == ("aggregated", 2, 40)
    assert _round(second).round_id == 2 and _round(second).model_version == 1


def test_a_top_k_codec_is_announced_and_compact_sparse_updates_are_folded_in() -> None:
    # Prepare
    core = _core(config=_config(codec="topk:0.25+zstd", min_clients=1))
    round_ = _round(core.start(0.0))
    delta = [np.zeros((4, 2), np.float32), np.zeros(2, np.float32)]
    delta[0][2, 1], delta[1][0] = 2.0, -1.0
    update = ModelUpdate(FLEET, round_.round_id, round_.model_version, "a", 1, 10, delta)
    payload = encode_message(update, codec="int8", compact=True, zstd=True)

    # Execute
    effects = core.handle(MessageArrived(update_topic(FLEET, "a"), payload), 1.0)

    # Assert
    assert (round_.codec, round_.encoding) == ("int8", "topk:0.25+zstd")
    closed = _closed(effects)
    assert _acks(effects, "a")[0].accepted and closed[0].version is not None
    np.testing.assert_allclose(closed[0].version.weights[0], delta[0])
    np.testing.assert_allclose(closed[0].version.weights[1], delta[1])


def test_a_new_head_is_also_published_as_a_smaller_patch_of_its_parent() -> None:
    # Prepare: a head large enough that a sparse change patches smaller than it
    head = [np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)]
    core = AggregatorCore(_config(min_clients=1), make_strategy("fedavg"), RoundMemory(), head)
    round_ = _round(core.start(0.0))
    delta = [np.zeros((64, 16), np.float32)]
    delta[0][::8, 3] = 0.5
    update = ModelUpdate(FLEET, round_.round_id, 0, "a", 1, 10, delta)
    arrived = MessageArrived(update_topic(FLEET, "a"), encode_message(update, codec="float32"))

    # Execute
    effects = core.handle(arrived, 1.0)

    # Assert
    full = _published(effects, model_topic(FLEET, 1))[0].payload
    patch = decode_message(_published(effects, patch_topic(FLEET, 1))[0].payload)
    assert isinstance(patch, ModelPatch) and len(patch.patch) < len(full) // 4
    assert (patch.base_version, patch.base_sha256) == (0, message_sha256(head))
    patched = apply_patch(head, patch.patch)
    assert message_sha256(patched) == patch.model_sha256 == _round(effects).model_sha256


def test_duplicate_sparse_indices_are_refused_with_the_reason_in_the_log() -> None:
    # Prepare: index 3 twice (gaps 3, 0) in a compact update
    core = _core(config=_config(codec="topk:0.25", min_clients=1))
    round_ = _round(core.start(0.0))
    tensors = [{"dtype": "float32", "shape": [4, 2], "codec": "int8", "scale": 0.1,
                "values": b"\x01\x02", "indices": b"\x03\x00", "index_coding": "varint"},
               {"dtype": "float32", "shape": [2], "codec": "int8", "scale": 0.1,
                "values": b"\x01\x01"}]  # fmt: skip
    fields = {"fleet": FLEET, "round_id": round_.round_id, "base_version": 0, "device_id": "a",
              "sequence": 1, "num_examples": 10, "metrics": {}}  # fmt: skip
    body = msgpack.packb({"type": "model_update", "fields": fields, "tensors": tensors})
    payload = msgpack.packb({"v": 1, "body": body})

    # Execute
    effects = core.handle(MessageArrived(update_topic(FLEET, "a"), payload), 1.0)

    # Assert
    assert not _acks(effects, "a")[0].accepted
    assert any("duplicate sparse index 3" in e.line for e in effects if isinstance(e, Log))


def test_below_quorum_round_waits_for_its_deadline_then_closes_without_a_version() -> None:
    # Prepare
    core = _core()
    round_ = _round(core.start(0.0))
    core.handle(_update("a", round_), 1.0)

    # Execute
    early = core.handle(TimePassed(), DEADLINE - 0.001)
    late = core.handle(TimePassed(), DEADLINE)

    # Assert
    assert _closed(early) == []
    closed = _closed(late)
    assert closed[0].version is None and closed[0].metrics.status == "below_quorum"
    assert _round(late).round_id == 2 and _round(late).model_version == 0
    assert core.wake_at() == DEADLINE + DEADLINE


def test_quorum_met_but_an_online_device_missing_waits_for_it_or_the_deadline() -> None:
    core = _core()
    round_ = _round(core.start(0.0))
    for device in "abc":
        core.handle(_status(device), 0.5)
    core.handle(_update("a", round_), 1.0)
    waiting = core.handle(_update("b", round_), 2.0)
    assert _closed(waiting) == [] and core.waiting_for == {"c"}
    assert _closed(core.handle(_status("c", online=False), 3.0)) != []  # c went offline


def test_stale_duplicate_replayed_and_resent_updates() -> None:
    # Prepare
    core = _core()
    first_round = _round(core.start(0.0))
    core.handle(_update("a", first_round, sequence=5), 1.0)
    resend = _update("a", first_round, sequence=5)

    # Execute
    resent = core.handle(resend, 2.0)
    duplicate = core.handle(_update("a", first_round, sequence=6, value=9.0), 3.0)
    second_round = _round(core.handle(TimePassed(), DEADLINE))  # closes below quorum
    stale = core.handle(_update("b", first_round), DEADLINE + 1)
    replayed = core.handle(_update("a", second_round, sequence=5), DEADLINE + 2)

    # Assert
    assert _acks(resent, "a")[0].accepted and _acks(resent, "a")[0].reason == "already stored"
    assert not any(isinstance(e, StoreAcceptedUpdate) for e in resent)
    assert [(a.accepted, a.reason) for a in _acks(duplicate, "a")] == [(False, "duplicate")]
    assert [(a.accepted, a.reason) for a in _acks(stale, "b")] == [(False, "stale")]
    assert [(a.accepted, a.reason) for a in _acks(replayed, "a")] == [(False, "replayed")]
    reasons = [e.reason for e in duplicate + stale + replayed if isinstance(e, StoreRejection)]
    assert reasons == ["duplicate", "stale", "replayed"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"\x00garbage", "malformed"), (b"", "malformed"), (b"\x82\xa1v\x01", "malformed")],
)
def test_bad_payloads_are_rejected_and_counted(payload: bytes, reason: str) -> None:
    core = _core()
    core.start(0.0)
    effects = core.handle(MessageArrived(update_topic(FLEET, "a"), payload), 1.0)
    assert [e.reason for e in effects if isinstance(e, StoreRejection)] == [reason]
    assert [a.accepted for a in _acks(effects, "a")] == [False]


def test_update_for_another_device_topic_is_wrong_topic() -> None:
    core = _core()
    round_ = _round(core.start(0.0))
    forged = _update("a", round_)
    effects = core.handle(MessageArrived(update_topic(FLEET, "b"), forged.payload), 1.0)
    assert [a.reason for a in _acks(effects, "b")] == ["wrong_topic"]


def test_with_a_verify_key_unsigned_and_foreign_signed_updates_are_unauthenticated() -> None:
    # Prepare
    known, stranger = generate_signing_key(), generate_signing_key()
    keys = {"a": known.public_key()}
    core = _core(trust=Trust(verify_key=keys.get))
    round_ = _round(core.start(0.0))

    # Execute
    unsigned = core.handle(_update("a", round_), 1.0)
    foreign = core.handle(_update("a", round_, key=stranger), 2.0)
    signed = core.handle(_update("a", round_, key=known), 3.0)

    # Assert
    assert [a.reason for a in _acks(unsigned + foreign, "a")] == ["unauthenticated"] * 2
    assert [a.accepted for a in _acks(signed, "a")] == [True]


def test_signing_key_signs_what_the_core_publishes() -> None:
    key = generate_signing_key()
    effects = _core(trust=Trust(signing_key=key)).start(0.0)
    verify = aggregator_verifier(public_key_to_bytes(key.public_key()))
    message = decode_message(_published(effects, round_topic(FLEET))[0].payload, verify_key=verify)
    assert isinstance(message, RoundAnnouncement)


def test_after_the_last_round_the_core_finishes_and_reannounces_a_passed_deadline() -> None:
    core = _core(config=_config(rounds=1, min_clients=1))
    round_ = _round(core.start(0.0))
    effects = core.handle(_update("a", round_), 5.0)
    assert core.finished and core.wake_at() is None
    final = _round(effects)
    assert final.round_id == 1 and final.deadline_unix <= 5.0
    assert [e.metrics.round for e in effects if isinstance(e, RoundClosed)] == [1]


def _replay(core: AggregatorCore, store: StateStore, effects: list[Effect]) -> list[Effect]:
    for effect in effects:
        apply_to_store(store, effect, now=0.0)
    return effects


def test_restart_mid_round_resumes_from_the_store_and_gives_the_uninterrupted_head(
    tmp_path: Path,
) -> None:
    # Prepare: an uninterrupted round for reference
    reference = _core()
    round_ = _round(reference.start(0.0))
    reference.handle(_update("a", round_, value=1.0), 1.0)
    want = _closed(reference.handle(_update("b", round_, value=3.0, num_examples=30), 2.0))

    # Execute: the same round with a crash between the two updates
    with StateStore(tmp_path / "state.sqlite") as store:
        first = _core()
        round_ = _round(_replay(first, store, first.start(0.0)))
        _replay(first, store, first.handle(_update("a", round_, value=1.0), 1.0))
        restarted = _core(read_snapshot(store))
        resumed = _replay(restarted, store, restarted.start(50.0))
        resend = _replay(restarted, store, restarted.handle(_update("a", round_, value=1.0), 51))
        got = _closed(restarted.handle(_update("b", round_, value=3.0, num_examples=30), 52.0))

    # Assert: same round id, deadline pushed out, the acked update kept and recognised
    assert _round(resumed).round_id == 1 and _round(resumed).deadline_unix == 50.0 + DEADLINE
    assert _acks(resend, "a")[0].reason == "already stored"
    assert got[0].version is not None and want[0].version is not None
    for a, b in zip(got[0].version.weights, want[0].version.weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_restart_between_rounds_opens_the_next_round_on_the_latest_version(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.sqlite") as store:
        core = _core(config=_config(min_clients=1))
        round_ = _round(_replay(core, store, core.start(0.0)))
        _replay(core, store, core.handle(_update("a", round_), 1.0))
        restarted = _core(read_snapshot(store), config=_config(min_clients=1))
        effects = restarted.start(10.0)
    assert _round(effects).round_id == 2 and _round(effects).model_version == 1
    assert not any(isinstance(e, StoreVersion) for e in effects)  # version 0 exists already


# secure aggregation ------------------------------------------------------------------------------
Participants = dict[str, SecAggParticipant]
Drops = Callable[[str, str], bool]


def _secure_fleet(devices: list[str]) -> tuple[AggregatorCore, Participants]:
    aggregator_key = generate_signing_key()
    verify = aggregator_verifier(public_key_to_bytes(aggregator_key.public_key()))
    deltas = {
        d: [np.full(w.shape, i + 1.0, np.float32) for w in HEAD] for i, d in enumerate(devices)
    }

    def make_input(device: str):  # type: ignore[no-untyped-def]
        return lambda round_id, config: encode_weighted_update(deltas[device], 10, config)

    participants = {d: SecAggParticipant(FLEET, d, make_input(d), generate_signing_key(), verify)
                    for d in devices}  # fmt: skip
    options = SecureAggOptions(phase_timeout_s=5.0)
    core = _core(config=_config(min_clients=2), trust=Trust(signing_key=aggregator_key),
                 secure_agg=options)  # fmt: skip
    return core, participants


def _route(core: AggregatorCore, participants: Participants, effects: list[Effect], now: float,
           drops: Drops = lambda device, topic: False) -> list[Effect]:  # fmt: skip
    """Deliver the core's phase publishes to devices and their answers back, until quiet.

    `drops(device, topic)` makes a device ignore a message (it vanished).
    """
    pending = [e for e in effects if isinstance(e, Publish)]
    produced: list[Effect] = list(effects)
    while pending:
        answers: list[Publish] = []
        for message in pending:
            for device, participant in participants.items():
                listens = message.topic in participant.subscriptions()
                if listens and not drops(device, message.topic):
                    answers += participant.handle(message.topic, message.payload)
        pending = []
        for answer in answers:
            out = core.handle(MessageArrived(answer.topic, answer.payload), now)
            produced += out
            pending += [e for e in out if isinstance(e, Publish)]
    return produced


def _secure_core_with(devices: list[str]) -> tuple[AggregatorCore, Participants]:
    core, participants = _secure_fleet(devices)
    for device in devices:
        core.handle(_status(device), 0.0)
    return core, participants


def test_secure_round_sums_every_device_and_closes() -> None:
    core, participants = _secure_core_with(["a", "b", "c"])
    closed = _closed(_route(core, participants, core.start(1.0), 2.0))
    assert closed and closed[0].metrics.participants == 3
    assert closed[0].version is not None
    np.testing.assert_allclose(closed[0].version.weights[0], 2.0, atol=1e-3)  # mean of 1, 2, 3


def test_secure_round_with_a_device_vanishing_after_sharing_keys_unmasks_the_others() -> None:
    # Prepare: d shares its keys, then never sends its masked input
    core, participants = _secure_core_with(["a", "b", "c", "d"])
    vanished = lambda device, topic: device == "d" and "inbox" in topic  # noqa: E731

    # Execute
    before = _route(core, participants, core.start(1.0), 2.0, vanished)
    after = _route(core, participants, core.handle(TimePassed(), 2.0 + 5.0), 7.0, vanished)

    # Assert: masked phase ended at its deadline; d's pair masks were rebuilt from shares
    assert _closed(before) == []
    closed = _closed(after)
    assert closed and closed[0].version is not None and closed[0].metrics.participants == 3
    np.testing.assert_allclose(closed[0].version.weights[0], 2.0, atol=1e-3)  # mean of 1, 2, 3


def test_secure_round_below_threshold_fails_and_closes_without_a_version() -> None:
    core, participants = _secure_core_with(["a", "b", "c", "d"])
    silent = lambda device, topic: device != "a"  # noqa: E731
    _route(core, participants, core.start(1.0), 2.0, silent)
    effects = core.handle(TimePassed(), 1.0 + 5.0)  # keys phase deadline: only a answered
    closed = _closed(effects)
    assert closed and closed[0].version is None and closed[0].metrics.status == "below_quorum"


def test_secure_round_gives_up_at_the_round_deadline() -> None:
    core, participants = _secure_core_with(["a", "b"])
    never = lambda device, topic: True  # noqa: E731
    _route(core, participants, core.start(1.0), 1.0, never)
    assert _closed(core.handle(TimePassed(), 1.0 + 4.0)) == []
    assert core.wake_at() == 1.0 + 5.0  # the phase deadline comes before the round's


def test_with_a_registry_only_statuses_the_device_signed_count_it_online() -> None:
    # Prepare
    own, other = generate_signing_key(), generate_signing_key()
    keys = {"a": own.public_key(), "b": other.public_key()}
    core = _core(trust=Trust(verify_key=keys.get))
    core.start(0.0)

    def status(device: str, key: object) -> MessageArrived:
        payload = encode_message(DeviceStatus(FLEET, device, True, 0), signing_key=key)  # type: ignore[arg-type]
        return MessageArrived(status_topic(FLEET, device), payload)

    # Execute
    core.handle(status("a", None), 1.0)  # unsigned
    core.handle(status("a", other), 2.0)  # signed by b's key
    unsigned_or_forged = set(core.online)
    core.handle(status("a", own), 3.0)

    # Assert
    assert unsigned_or_forged == set() and core.online == {"a"}


def _partial(signer: str, devices: dict[str, float], sequence: int) -> MessageArrived:
    """A worker's partial sum of devices (id -> delta value), 10 examples each, round 1 on v0."""
    from fleet_protocol.partial_sum import PartialSum, encode_partial_sum
    from fleet_protocol.topics import partial_topic

    size = sum(w.size for w in HEAD)
    total = sum((np.full(size, v) * 10 for v in devices.values()), start=np.zeros(size))
    partial = PartialSum(FLEET, 1, 0, signer, sequence, total, 10 * len(devices),
                         tuple(sorted(devices)), tuple(w.shape for w in HEAD))  # fmt: skip
    return MessageArrived(partial_topic(FLEET, signer), encode_partial_sum(partial, None))


def test_a_coordinator_waits_while_a_device_is_in_two_partial_sums_then_adds_them() -> None:
    # Prepare: quorum 3; w2 holds dev-b twice over (its resend), w1 holds it too
    from aggregator.partial_sums import Coordination

    core = _core(config=_config(min_clients=3), coordination=Coordination(None))
    core.start(0.0)
    core.handle(_partial("w1", {"dev-a": 1.0, "dev-b": 2.0}, 1), 1.0)
    # Execute
    overlapping = core.handle(_partial("w2", {"dev-b": 2.0, "dev-c": 4.0}, 1), 2.0)
    resolved = core.handle(_partial("w2", {"dev-c": 4.0}, 2), 3.0)
    # Assert: no close while dev-b is held twice; then the mean of 1, 2, 4 over all three
    assert _closed(overlapping) == []
    (closed,) = _closed(resolved)
    assert closed.metrics.participants == 3 and closed.metrics.num_examples == 30
    assert closed.version is not None
    np.testing.assert_allclose(closed.version.weights[0], np.full((4, 2), 7.0 / 3), atol=1e-6)
