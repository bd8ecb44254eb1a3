"""The asynchronous (buffered) core driven event by event: no broker, no sleeping.

Covers applying the buffer every K updates, staleness weights, the staleness cap, a restart
mid-buffer from the state file, duplicates, replays, resends and updates from the future.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from aggregator.async_core import AsyncAggregatorCore, AsyncSettings, staleness_weight
from aggregator.core_config import AggregatorConfig
from aggregator.round_events import (
    Effect,
    Log,
    MessageArrived,
    StoreAcceptedUpdate,
    StoreClosedRound,
    StoreRejection,
    TimePassed,
)
from aggregator.round_memory import RoundMemory, read_snapshot
from aggregator.service import apply_to_store
from aggregator.state_store import StateStore
from aggregator.strategies import make_strategy
from fleet_protocol.messages import ModelUpdate, RoundAnnouncement, UpdateAck
from fleet_protocol.publish import Publish
from fleet_protocol.topics import ack_topic, model_topic, round_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message

FLEET = "async"
HEAD = [np.zeros((3, 2), np.float32), np.zeros(2, np.float32)]


def _core(
    memory: RoundMemory | None = None, buffer_size: int = 2, max_staleness: int = 2
) -> AsyncAggregatorCore:
    config = AggregatorConfig(FLEET, rounds=10, min_clients=1, deadline_s=30.0, codec="float32")
    settings = AsyncSettings(buffer_size, max_staleness)
    return AsyncAggregatorCore(config, make_strategy("fedavg"), memory or RoundMemory(), HEAD,
                               settings)  # fmt: skip


def _published(effects: list[Effect], topic: str) -> list[Publish]:
    return [e for e in effects if isinstance(e, Publish) and e.topic == topic]


def _round(effects: list[Effect]) -> RoundAnnouncement:
    message = decode_message(_published(effects, round_topic(FLEET))[-1].payload)
    assert isinstance(message, RoundAnnouncement)
    return message


def _update(device: str, round_id: int, base: int, sequence: int = 1, value: float = 1.0,
            num_examples: int = 10) -> MessageArrived:  # fmt: skip
    delta = [np.full(w.shape, value, np.float32) for w in HEAD]
    update = ModelUpdate(FLEET, round_id, base, device, sequence, num_examples, delta)
    return MessageArrived(update_topic(FLEET, device), encode_message(update, codec="float32"))


def _ack(effects: list[Effect], device: str) -> UpdateAck:
    message = decode_message(_published(effects, ack_topic(FLEET, device))[-1].payload)
    assert isinstance(message, UpdateAck)
    return message


def _closed(effects: list[Effect]) -> list[StoreClosedRound]:
    return [e for e in effects if isinstance(e, StoreClosedRound)]


def _new_weights(effects: list[Effect]) -> list[np.ndarray]:
    closed = _closed(effects)
    assert len(closed) == 1 and closed[0].version is not None
    return closed[0].version.weights


def _to_version_one(core: AsyncAggregatorCore) -> RoundAnnouncement:
    """Start, then fill the first buffer with two fresh updates of 1.0 (head becomes 1.0)."""
    core.start(0.0)
    core.handle(_update("a", 1, 0, value=1.0), 1.0)
    return _round(core.handle(_update("b", 1, 0, value=1.0), 2.0))


def test_staleness_weight_is_one_over_sqrt_of_one_plus_staleness() -> None:
    assert [staleness_weight(s) for s in (0, 1, 3)] == [1.0, 1 / math.sqrt(2), 0.5]


def test_announcement_carries_the_cap_and_the_buffer_size_as_quorum() -> None:
    # Execute
    announcement = _round(_core(buffer_size=3, max_staleness=5).start(0.0))

    # Assert
    assert (announcement.round_id, announcement.model_version) == (1, 0)
    assert (announcement.quorum, announcement.max_staleness) == (3, 5)


def test_buffer_is_applied_every_k_updates_and_not_before() -> None:
    # Prepare
    core = _core(buffer_size=3)
    core.start(0.0)

    # Execute
    first = core.handle(_update("a", 1, 0, value=1.0), 1.0)
    second = core.handle(_update("b", 1, 0, value=2.0), 2.0)
    waited = core.handle(TimePassed(), 1e6)  # no deadline: time alone applies nothing
    third = core.handle(_update("c", 1, 0, value=3.0), 3.0)

    # Assert
    assert not _closed(first + second + waited) and core.wake_at() is None
    np.testing.assert_allclose(_new_weights(third)[0], 2.0)  # mean of fresh deltas
    metrics = _closed(third)[0].metrics
    assert (metrics.status, metrics.participants, metrics.extra["mode"]) == ("aggregated", 3,
                                                                             "async")  # fmt: skip
    assert _published(third, model_topic(FLEET, 1))
    assert (_round(third).round_id, _round(third).model_version) == (2, 1)


def test_a_stale_update_is_accepted_with_its_staleness_weight() -> None:
    # Prepare: version 1 is 1.0 everywhere
    core = _core(buffer_size=2)
    _to_version_one(core)

    # Execute: a fresh delta of 2.0 and a delta of 4.0 trained on version 0 (staleness 1)
    core.handle(_update("c", 2, 1, value=2.0), 3.0)
    late = core.handle(_update("d", 1, 0, value=4.0), 4.0)

    # Assert: 1.0 + (2.0 * 1 + 4.0 / sqrt(2)) / 2 ; the late device was acked
    assert _ack(late, "d").accepted
    want = 1.0 + (2.0 + 4.0 / math.sqrt(2)) / 2
    np.testing.assert_allclose(_new_weights(late)[1], want, rtol=1e-6)
    metrics = _closed(late)[0].metrics
    assert (metrics.extra["staleness_max"], metrics.extra["staleness_mean"]) == (1, 0.5)


def test_an_update_past_the_staleness_cap_is_refused_with_its_reason() -> None:
    # Prepare: three versions on, with a cap of 1
    core = _core(buffer_size=1, max_staleness=1)
    core.start(0.0)
    for version in range(3):
        core.handle(_update(f"d{version}", version + 1, version), float(version))

    # Execute: trained on version 1 (staleness 2)
    effects = core.handle(_update("slow", 2, 1), 10.0)

    # Assert
    ack = _ack(effects, "slow")
    assert not ack.accepted and ack.reason == "too_stale"
    assert [e.reason for e in effects if isinstance(e, StoreRejection)] == ["too_stale"]
    assert not any(isinstance(e, StoreAcceptedUpdate) for e in effects)


@pytest.mark.parametrize(
    ("round_id", "base"), [(5, 0), (1, 7)], ids=["future_buffer", "unknown_version"]
)
def test_an_update_naming_a_buffer_or_version_that_does_not_exist_is_stale(
    round_id: int, base: int
) -> None:
    core = _core()
    core.start(0.0)
    assert _ack(core.handle(_update("a", round_id, base), 1.0), "a").reason == "stale"


def test_duplicates_replays_and_resends_in_one_buffer() -> None:
    # Prepare
    core = _core(buffer_size=3)
    core.start(0.0)
    first = _update("a", 1, 0, sequence=4)
    core.handle(first, 1.0)

    # Execute
    resent = core.handle(first, 2.0)  # the very bytes again: acked, counted once
    other = core.handle(_update("a", 1, 0, sequence=5, value=9.0), 3.0)  # second: held
    third = core.handle(_update("a", 1, 0, sequence=6, value=7.0), 3.5)  # third while held
    replay = core.handle(_update("b", 1, 0, sequence=1), 4.0)
    closed = core.handle(_update("c", 1, 0, sequence=2), 5.0)  # the buffer fills and closes
    old = core.handle(_update("b", 1, 0, sequence=1), 6.0)  # b's sequence 1 is already spent

    # Assert
    assert _ack(resent, "a").reason == "already stored" and _ack(resent, "a").accepted
    assert not _published(other, ack_topic(FLEET, "a"))  # waits, unacked
    assert _ack(third, "a").reason == "duplicate"
    assert _ack(replay, "b").accepted
    assert _closed(closed)[0].metrics.participants == 3
    assert _ack(closed, "a").accepted  # folded into the next buffer as it opened
    assert _ack(old, "b").reason == "replayed"


def test_a_second_update_in_a_buffer_waits_for_the_next_and_counts_with_its_staleness() -> None:
    # Prepare: buffer 1 (version 0, K=2) holds a's update
    core = _core(buffer_size=2)
    core.start(0.0)
    core.handle(_update("a", 1, 0, sequence=1, value=1.0), 1.0)
    second = _update("a", 1, 0, sequence=2, value=3.0)

    # Execute: a's second update, its resend, then b fills buffer 1; c fills buffer 2
    held = core.handle(second, 2.0)
    resent = core.handle(second, 2.5)
    opened = core.handle(_update("b", 1, 0, sequence=1, value=1.0), 3.0)
    closed = core.handle(_update("c", 2, 1, sequence=1, value=2.0), 4.0)

    # Assert: nothing stored or acked while held; stored before its ack in buffer 2
    assert not [e for e in held + resent if isinstance(e, (StoreAcceptedUpdate, Publish))]
    assert any("waits for the next buffer" in e.line for e in held if isinstance(e, Log))
    first_close = _closed(opened)[0].metrics
    assert (first_close.participants, first_close.extra["held_for_next"]) == (2, 1)
    np.testing.assert_allclose(_new_weights(opened)[0], 1.0)  # a's second update not in it
    stored = [e for e in opened if isinstance(e, StoreAcceptedUpdate)]
    assert [(s.update.round_id, s.update.device_id, s.update.sequence) for s in stored][-1] == (
        2,
        "a",
        2,
    )
    ack_at = opened.index(_published(opened, ack_topic(FLEET, "a"))[-1])
    assert opened.index(stored[-1]) < ack_at and _ack(opened, "a").accepted
    want = 1.0 + (3.0 / math.sqrt(2) + 2.0) / 2  # staleness 1 in buffer 2
    np.testing.assert_allclose(_new_weights(closed)[0], want, rtol=1e-6)
    assert _closed(closed)[0].metrics.extra["staleness_max"] == 1


def test_restart_mid_buffer_keeps_acked_updates_and_gives_the_uninterrupted_head(
    tmp_path: Path,
) -> None:
    # Prepare: the uninterrupted run, a stale update in the buffer
    reference = _core(buffer_size=2)
    _to_version_one(reference)
    reference.handle(_update("d", 1, 0, value=4.0), 3.0)
    want = _new_weights(reference.handle(_update("c", 2, 1, value=2.0), 4.0))

    # Execute: the same, killed after the stale update was stored and acked
    with StateStore(tmp_path / "state.sqlite") as store:
        first = _core(buffer_size=2)
        for effects in (first.start(0.0), first.handle(_update("a", 1, 0), 1.0),
                        first.handle(_update("b", 1, 0), 2.0),
                        first.handle(_update("d", 1, 0, value=4.0), 3.0)):  # fmt: skip
            _replay(store, effects)
        restarted = _core(read_snapshot(store), buffer_size=2)
        resumed = _replay(store, restarted.start(50.0))
        resend = restarted.handle(_update("d", 1, 0, value=4.0), 51.0)
        got = _new_weights(restarted.handle(_update("c", 2, 1, value=2.0), 52.0))

    # Assert: same buffer, the acked stale update still in it and recognised when resent
    assert (_round(resumed).round_id, _round(resumed).model_version) == (2, 1)
    assert _ack(resend, "d").reason == "already stored"
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def _replay(store: StateStore, effects: list[Effect]) -> list[Effect]:
    for effect in effects:
        apply_to_store(store, effect, now=0.0)
    return effects


def test_settings_refuse_an_empty_buffer() -> None:
    with pytest.raises(ValueError, match="buffer_size"):
        AsyncSettings(buffer_size=0, max_staleness=1)
