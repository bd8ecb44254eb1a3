"""Bounded updates and refused heads: the pure limits, then the round core with a fake clock.

A finite but huge delta (1e38) must never reach the strategy; a candidate head that is not
finite or moved too far is never stored or published; a state file that already holds a bad
head rolls back to the last good one at start-up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aggregator.core_config import AggregatorConfig
from aggregator.round_core import AggregatorCore
from aggregator.round_events import (
    Effect,
    MessageArrived,
    StoreClosedRound,
    StoreRejection,
    StoreVersion,
)
from aggregator.round_memory import RoundMemory, read_snapshot
from aggregator.service import apply_to_store
from aggregator.state_store import StateStore
from aggregator.strategies import make_strategy
from aggregator.update_bounds import (
    BoundsPolicy,
    UpdateBounds,
    bounds_for_head,
    candidate_violation,
    head_violation,
    update_violation,
)
from fleet_protocol.messages import ModelUpdate, RoundAnnouncement, UpdateAck
from fleet_protocol.publish import Publish
from fleet_protocol.topics import ack_topic, model_topic, round_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message, message_sha256

FLEET = "bounds"
HEAD = [np.full((4, 2), 0.5, np.float32), np.zeros(2, np.float32)]


# pure limits -------------------------------------------------------------------------------------
def test_bounds_scale_with_the_head_and_have_a_floor_for_a_fresh_head() -> None:
    # Prepare
    big = [np.full((4,), 3.0, np.float32)]  # norm 6, peak 3
    fresh = [np.zeros((4,), np.float32)]

    # Execute
    scaled, floored = bounds_for_head(big), bounds_for_head(fresh)
    explicit = bounds_for_head(big, BoundsPolicy(max_norm=2.0, max_abs=0.5))

    # Assert
    assert (scaled.max_norm, scaled.max_abs) == (60.0, 30.0)
    assert (floored.max_norm, floored.max_abs) == (20.0, 10.0)  # sqrt(4) x 10, 1 x 10
    assert (explicit.max_norm, explicit.max_abs) == (2.0, 0.5)


def test_update_violation_names_magnitude_norm_and_non_finite() -> None:
    bounds = UpdateBounds(max_norm=3.0, max_abs=2.0)
    assert update_violation([np.array([1.0, 1.0], np.float32)], bounds) is None
    assert "largest" in (update_violation([np.array([2.5], np.float32)], bounds) or "")
    assert "norm" in (update_violation([np.full(9, 1.5, np.float32)], bounds) or "")
    assert "NaN" in (update_violation([np.array([np.inf], np.float32)], bounds) or "")


def test_head_and_candidate_violations() -> None:
    base = [np.zeros(3, np.float32)]
    bounds = UpdateBounds(max_norm=1.0, max_abs=1.0)
    assert head_violation([np.array([np.nan], np.float32)]) == "non_finite"
    assert head_violation([np.array([1e30], np.float32)]) == "out_of_bounds"
    assert candidate_violation([np.full(3, 0.1, np.float32)], base, bounds) is None
    assert candidate_violation([np.full(3, 0.9, np.float32)], base, bounds) == "out_of_bounds"


# round core --------------------------------------------------------------------------------------
def _core(memory: RoundMemory | None = None, policy: BoundsPolicy | None = None) -> AggregatorCore:
    config = AggregatorConfig(FLEET, rounds=3, min_clients=1, deadline_s=30.0, codec="float32",
                              bounds=policy or BoundsPolicy())  # fmt: skip
    return AggregatorCore(config, make_strategy("fedavg"), memory or RoundMemory(), HEAD)


def _round(effects: list[Effect]) -> RoundAnnouncement:
    topic = round_topic(FLEET)
    message = decode_message([e for e in effects if isinstance(e, Publish)
                              and e.topic == topic][-1].payload)  # fmt: skip
    assert isinstance(message, RoundAnnouncement)
    return message


def _update(device: str, round_: RoundAnnouncement, value: float) -> MessageArrived:
    delta = [np.full(w.shape, value, np.float32) for w in HEAD]
    update = ModelUpdate(FLEET, round_.round_id, round_.model_version, device, 1, 10, delta)
    return MessageArrived(update_topic(FLEET, device), encode_message(update, codec="float32"))


def _acks(effects: list[Effect], device: str) -> list[tuple[bool, str]]:
    topic = ack_topic(FLEET, device)
    sent = [e for e in effects if isinstance(e, Publish) and e.topic == topic]
    acks = [decode_message(e.payload) for e in sent]
    return [(a.accepted, a.reason) for a in acks if isinstance(a, UpdateAck)]


def _models_published(effects: list[Effect]) -> list[str]:
    prefix = model_topic(FLEET, 0)[:-1]
    return [e.topic for e in effects if isinstance(e, Publish) and e.topic.startswith(prefix)
            and e.payload]  # fmt: skip


def test_a_finite_but_huge_update_is_rejected_before_it_touches_the_model() -> None:
    # Prepare
    core = _core()
    round_ = _round(core.start(0.0))

    # Execute
    hostile = core.handle(_update("evil", round_, 1e38), 1.0)
    honest = core.handle(_update("good", round_, 0.1), 2.0)

    # Assert: counted, nacked, and the honest update alone makes the next head
    assert _acks(hostile, "evil") == [(False, "out_of_bounds")]
    assert [e.reason for e in hostile if isinstance(e, StoreRejection)] == ["out_of_bounds"]
    closed = [e for e in honest if isinstance(e, StoreClosedRound)]
    assert closed[0].version is not None
    np.testing.assert_allclose(closed[0].version.weights[0], 0.6)
    assert closed[0].metrics.rejected == {"out_of_bounds": 1}


def test_a_non_finite_candidate_is_never_stored_or_published_and_the_round_counts_it() -> None:
    # Prepare: limits switched far beyond float32, so only the candidate check is left
    core = _core(policy=BoundsPolicy(max_norm=1e300, max_abs=1e300))
    round_ = _round(core.start(0.0))

    # Execute: 3e38 passes the (disabled) update limits; the head moves absurdly far
    effects = core.handle(_update("a", round_, 3e38), 1.0)

    # Assert
    closed = [e for e in effects if isinstance(e, StoreClosedRound)]
    assert len(closed) == 1 and closed[0].version is None
    assert closed[0].metrics.status == "aggregation_failed"
    assert closed[0].metrics.rejected == {"head_out_of_bounds": 1}
    assert _models_published(effects) == []
    assert _round(effects).round_id == 2 and _round(effects).model_version == 0


def _store_bad_head(store: StateStore, version: int, open_next: bool) -> None:
    """What an older release left behind: a closed round whose head holds infinity."""
    bad = [np.full(w.shape, np.inf, np.float32) for w in HEAD]
    core = _core()
    for effect in core.start(0.0):
        apply_to_store(store, effect, 0.0)
    store.close_round(1, version, bad, message_sha256(HEAD), {}, 1.0)
    if open_next:
        store.open_round(2, version, 1.0, 31.0, 1, {})


def test_a_state_file_holding_a_bad_head_rolls_back_to_the_last_good_one(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.sqlite") as store:
        # Prepare
        _store_bad_head(store, 1, open_next=False)
        memory = read_snapshot(store)
        refused = list(memory.refused_versions)

        # Execute
        effects = _core(memory).start(10.0)
        for effect in effects:
            apply_to_store(store, effect, 10.0)
        again = _core(read_snapshot(store)).start(20.0)

    # Assert: version 0's head comes back as version 2; the bad model is cleared; no loop
    assert refused == [1] and memory.refused_versions == []
    stored = [e for e in effects if isinstance(e, StoreVersion)]
    assert [(s.version, s.parent) for s in stored] == [(2, 0)]
    np.testing.assert_array_equal(stored[0].weights[0], HEAD[0])
    cleared = [e for e in effects if isinstance(e, Publish) and e.topic == model_topic(FLEET, 1)]
    assert [(c.payload, c.retain) for c in cleared] == [(b"", True)]
    assert _round(effects).model_version == 2
    assert not any(isinstance(e, StoreVersion) for e in again)
    assert _round(again).model_version == 2


def test_a_round_left_open_on_a_bad_head_is_closed_and_the_next_opens_on_the_good_one(
    tmp_path: Path,
) -> None:
    with StateStore(tmp_path / "state.sqlite") as store:
        _store_bad_head(store, 1, open_next=True)
        effects = _core(read_snapshot(store)).start(10.0)
    closed = [e for e in effects if isinstance(e, StoreClosedRound)]
    assert [(c.round_id, c.version) for c in closed] == [(2, None)]
    assert closed[0].metrics.rejected == {"head_rolled_back": 1}
    assert (_round(effects).round_id, _round(effects).model_version) == (3, 2)
