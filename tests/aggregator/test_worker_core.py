"""The worker's pure core: commit before ack, partial sums, restart, and a device taken twice."""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aggregator.worker_core import (
    CommitWorkerBatch,
    StartWorkerRound,
    WorkerConfig,
    WorkerCore,
    WorkerTrust,
)
from aggregator.worker_store import WorkerRound
from fleet_protocol.messages import GlobalModel, ModelUpdate, RoundAnnouncement, UpdateAck
from fleet_protocol.partial_sum import PartialSum, decode_partial_sum, encode_partial_sum
from fleet_protocol.publish import Publish
from fleet_protocol.topics import model_topic, partial_topic, round_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message, message_sha256

FLEET = "ward-7"
SHAPES = [(3, 2), (2,)]
BASE = [np.full(s, 0.5, dtype=np.float32) for s in SHAPES]
DEVICE_KEYS = {f"dev-{i}": Ed25519PrivateKey.generate() for i in range(4)}


def trust() -> WorkerTrust:
    return WorkerTrust(device_key=lambda d: DEVICE_KEYS[d].public_key() if d in DEVICE_KEYS
                       else None)  # fmt: skip


def gen_round() -> list[tuple[str, bytes]]:
    """The coordinator's retained round 1 on version 0 and the head of version 0."""
    announcement = RoundAnnouncement(FLEET, 1, 0, message_sha256(BASE), 1000.0, 4)
    model = GlobalModel(FLEET, 0, BASE, None, 0)
    return [(round_topic(FLEET), encode_message(announcement)),
            (model_topic(FLEET, 0), encode_message(model))]  # fmt: skip


def gen_update(device: str, n: int = 10) -> tuple[str, bytes]:
    rng = np.random.default_rng(int(device.split("-")[1]))
    delta = [rng.normal(0, 0.1, s).astype(np.float32) for s in SHAPES]
    update = ModelUpdate(FLEET, 1, 0, device, 1, n, delta)
    payload = encode_message(update, codec="float32", signing_key=DEVICE_KEYS[device])
    return update_topic(FLEET, device), payload


def partials_of(effects: list[object]) -> list[PartialSum]:
    return [decode_partial_sum(e.payload, verify_key=None) for e in effects
            if isinstance(e, Publish) and "/partial/" in e.topic]  # fmt: skip


def acks_of(effects: list[object]) -> list[UpdateAck]:
    acks = [decode_message(e.payload) for e in effects if isinstance(e, Publish)
            and "/ack/" in e.topic]  # fmt: skip
    return [a for a in acks if isinstance(a, UpdateAck)]


def test_a_batch_is_committed_once_before_any_of_its_acks() -> None:
    # Prepare
    core = WorkerCore(WorkerConfig(FLEET, "w1"), trust(), None, [])
    # Execute
    effects = core.handle([*gen_round(), gen_update("dev-0"), gen_update("dev-1")], now=10.0)
    # Assert
    kinds = [type(e).__name__ for e in effects if type(e).__name__ != "Log"]
    assert kinds[0] == "StartWorkerRound" and kinds[1] == "CommitWorkerBatch"
    commit = next(e for e in effects if isinstance(e, CommitWorkerBatch))
    assert [u.device_id for u in commit.updates] == ["dev-0", "dev-1"] and commit.changes == 2
    first_ack = next(i for i, e in enumerate(effects) if isinstance(e, Publish))
    assert first_ack > effects.index(commit)
    assert [a.accepted for a in acks_of(effects)] == [True, True]


def test_the_partial_sum_is_the_weighted_sum_of_the_committed_updates() -> None:
    core = WorkerCore(WorkerConfig(FLEET, "w1"), trust(), None, [])
    effects = core.handle([*gen_round(), gen_update("dev-0", 10), gen_update("dev-1", 30)], 10.0)
    (partial,) = partials_of(effects)
    expected = np.zeros(8)
    for device, n in (("dev-0", 10), ("dev-1", 30)):
        update = decode_message(gen_update(device, n)[1])
        assert isinstance(update, ModelUpdate)
        expected += np.concatenate([t.ravel() for t in update.delta]).astype(np.float64) * n
    np.testing.assert_allclose(partial.weighted_sum, expected, rtol=0, atol=1e-12)
    assert (partial.total_weight, partial.participants) == (40, ("dev-0", "dev-1"))
    assert partial_topic(FLEET, "w1") in [e.topic for e in effects if isinstance(e, Publish)]


def test_an_unchanged_partial_sum_goes_out_again_while_the_round_is_open() -> None:
    # Prepare: one update folded and its partial sum published at t=10
    core = WorkerCore(WorkerConfig(FLEET, "w1", partial_again_s=5.0), trust(), None, [])
    (first,) = partials_of(core.handle([*gen_round(), gen_update("dev-0")], 10.0))
    # Execute: time passes without messages
    early = core.handle([], 14.9)
    due = core.wake_at()
    again = core.handle([], 15.0)
    # Assert: nothing before 5 s; then the same sum and sequence (the coordinator keeps one)
    assert partials_of(early) == [] and due == 15.0
    (repeat,) = partials_of(again)
    assert (repeat.sequence, repeat.participants) == (first.sequence, first.participants)
    np.testing.assert_array_equal(repeat.weighted_sum, first.weighted_sum)
    assert core.wake_at() == 20.0


def test_a_restarted_worker_sends_the_same_partial_sum_from_its_rows() -> None:
    # Prepare: what the first life committed
    first = WorkerCore(WorkerConfig(FLEET, "w1"), trust(), None, [])
    effects = first.handle([*gen_round(), gen_update("dev-0"), gen_update("dev-2", 7)], 10.0)
    commit = next(e for e in effects if isinstance(e, CommitWorkerBatch))
    (before,) = partials_of(effects)
    # Execute: a new core on the stored rows, then the retained round and head again
    second = WorkerCore(WorkerConfig(FLEET, "w1"), trust(), WorkerRound(1, 0, commit.changes),
                        commit.updates)  # fmt: skip
    after_effects = second.handle(gen_round(), 20.0)
    # Assert: no new round started (rows kept), the same sum goes out again
    assert not any(isinstance(e, StartWorkerRound) for e in after_effects)
    (after,) = partials_of(after_effects)
    np.testing.assert_array_equal(after.weighted_sum, before.weighted_sum)
    assert after.participants == before.participants and after.sequence == before.sequence


def test_a_resend_of_a_device_another_worker_holds_is_acked_not_taken() -> None:
    core = WorkerCore(WorkerConfig(FLEET, "w2"), trust(), None, [])
    core.handle(gen_round(), 10.0)
    other = PartialSum(FLEET, 1, 0, "w1", 1, np.zeros(8), 10, ("dev-0",), tuple(SHAPES))
    effects = core.handle([(partial_topic(FLEET, "w1"), encode_partial_sum(other, None)),
                           gen_update("dev-0")], 11.0)  # fmt: skip
    assert [a.accepted for a in acks_of(effects)] == [True]
    assert not any(isinstance(e, CommitWorkerBatch) for e in effects)
    assert core.counts == {"resent": 1}


def test_after_the_deadline_a_resend_of_a_device_another_worker_holds_is_still_acked() -> None:
    """Once the round closed, the coordinator re-announces it with its deadline passed; a device
    whose ack was lost still resends, and whichever worker the queue hands it to must say stored
    (a `stale` refusal would tell the device its update is not in the head)."""
    core = WorkerCore(WorkerConfig(FLEET, "w2"), trust(), None, [])
    core.handle(gen_round(), 10.0)
    other = PartialSum(FLEET, 1, 0, "w1", 1, np.zeros(8), 10, ("dev-0",), tuple(SHAPES))
    core.handle([(partial_topic(FLEET, "w1"), encode_partial_sum(other, None))], 11.0)
    finished = RoundAnnouncement(FLEET, 1, 0, message_sha256(BASE), 500.0, 4)
    core.handle([(round_topic(FLEET), encode_message(finished))], 500.0)
    effects = core.handle([gen_update("dev-0"), gen_update("dev-1")], 600.0)
    assert [(a.device_id, a.accepted, a.reason) for a in acks_of(effects)] == [
        ("dev-0", True, ""),
        ("dev-1", False, "stale"),
    ]
    assert not any(isinstance(e, CommitWorkerBatch) for e in effects)


def test_a_resend_of_an_update_this_worker_stored_is_acked_as_stored_not_taken_again() -> None:
    """A lost ack costs the device one resend: the same bytes are acked, not added twice."""
    core = WorkerCore(WorkerConfig(FLEET, "w1"), trust(), None, [])
    first = core.handle([*gen_round(), gen_update("dev-0")], 10.0)
    (sum_before,) = partials_of(first)
    effects = core.handle([gen_update("dev-0")], 26.0)
    assert [(a.accepted, a.reason) for a in acks_of(effects)] == [(True, "")]
    assert not any(isinstance(e, CommitWorkerBatch) for e in effects)
    assert core.counts == {"resent": 1}
    # 16 s on, the unchanged sum goes out again: same sequence, dev-0 once
    assert [(p.sequence, p.participants) for p in partials_of(effects)] == [
        (sum_before.sequence, ("dev-0",))
    ]


def test_the_worker_with_the_larger_id_drops_a_device_both_took() -> None:
    # Prepare: w2 took dev-0 (w1 died before its partial sum went out) and dev-1
    core = WorkerCore(WorkerConfig(FLEET, "w2"), trust(), None, [])
    effects = core.handle([*gen_round(), gen_update("dev-0"), gen_update("dev-1", 30)], 10.0)
    (with_both,) = partials_of(effects)
    w1 = PartialSum(FLEET, 1, 0, "w1", 3, np.zeros(8), 10, ("dev-0",), tuple(SHAPES))
    # Execute: the restarted w1's partial sum names dev-0
    effects = core.handle([(partial_topic(FLEET, "w1"), encode_partial_sum(w1, None))], 11.0)
    # Assert: dropped in a commit, the sum is dev-1's alone
    commit = next(e for e in effects if isinstance(e, CommitWorkerBatch))
    assert commit.dropped == ["dev-0"] and commit.changes == 3
    (after,) = partials_of(effects)
    only_dev1 = WorkerCore(WorkerConfig(FLEET, "w3"), trust(), None, [])
    (expected,) = partials_of(only_dev1.handle([*gen_round(), gen_update("dev-1", 30)], 10.0))
    assert after.participants == ("dev-1",) and after.total_weight == 30
    np.testing.assert_allclose(after.weighted_sum, expected.weighted_sum, rtol=0, atol=1e-12)
    assert after.sequence > with_both.sequence


def test_updates_before_the_round_is_known_wait_and_forged_ones_are_refused() -> None:
    core = WorkerCore(WorkerConfig(FLEET, "w1"), trust(), None, [])
    topic, payload = gen_update("dev-3")
    forged = bytearray(payload)
    forged[-5] ^= 0x01  # inside the signature
    assert core.handle([(topic, payload)], 10.0) == []
    effects = core.handle([*gen_round(), (topic, bytes(forged))], 11.0)
    assert [(a.device_id, a.accepted) for a in acks_of(effects)] == [
        ("dev-3", True),
        ("dev-3", False),
    ]
    assert core.counts == {"unauthenticated": 1}
