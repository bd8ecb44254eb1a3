"""Operating a fleet from the aggregator's state: device status and health, who a round waits
for, rejections per device, the promotion gate, rollbacks and the version-ahead warning.

The round core is driven with a fake clock and its storage effects applied to a real SQLite
state file, which is what `iomt fleet status` and `iomt aggregator rollback` then read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from aggregator.core_config import AggregatorConfig
from aggregator.device_registry import DeviceEntry
from aggregator.fleet_view import fleet_rows, format_row
from aggregator.round_core import AggregatorCore
from aggregator.round_events import (
    Effect,
    Log,
    MessageArrived,
    StoreCandidate,
    StoreClosedRound,
)
from aggregator.round_memory import RoundMemory, read_snapshot
from aggregator.service import apply_to_store
from aggregator.state_store import StateStore
from aggregator.strategies import make_strategy
from fleet_protocol.messages import DeviceStatus, GlobalModel, ModelUpdate, RoundAnnouncement
from fleet_protocol.publish import Publish
from fleet_protocol.topics import model_topic, round_topic, status_topic, update_topic
from fleet_protocol.types import Weights
from fleet_protocol.wire import decode_message, encode_message

FLEET = "ops"
HEAD = [np.zeros((2, 2), np.float32), np.zeros(2, np.float32)]
DEADLINE = 30.0


def _core(
    memory: RoundMemory | None = None,
    evaluate: Callable[[Weights], float] | None = None,
    margin: float | None = None,
) -> AggregatorCore:
    config = AggregatorConfig(FLEET, rounds=5, min_clients=1, deadline_s=DEADLINE,
                              codec="float32", promotion_margin=margin)  # fmt: skip
    return AggregatorCore(config, make_strategy("fedavg"), memory or RoundMemory(), HEAD,
                          evaluate=evaluate)  # fmt: skip


def _status(
    device: str, online: bool = True, version: int | None = 0, **health: object
) -> MessageArrived:
    status = DeviceStatus(FLEET, device, online, version, "", **health)  # type: ignore[arg-type]
    return MessageArrived(status_topic(FLEET, device), encode_message(status))


def _update(
    device: str, announcement: RoundAnnouncement, value: float, sequence: int = 1
) -> MessageArrived:
    delta = [np.full(w.shape, value, np.float32) for w in HEAD]
    update = ModelUpdate(FLEET, announcement.round_id, announcement.model_version, device,
                         sequence, 10, delta)  # fmt: skip
    return MessageArrived(update_topic(FLEET, device), encode_message(update, codec="float32"))


def _announcement(effects: list[Effect]) -> RoundAnnouncement:
    rounds = [e for e in effects if isinstance(e, Publish) and e.topic == round_topic(FLEET)]
    message = decode_message(rounds[-1].payload)
    assert isinstance(message, RoundAnnouncement)
    return message


def _apply(store: StateStore, effects: list[Effect], now: float) -> list[Effect]:
    for effect in effects:
        apply_to_store(store, effect, now)
    return effects


def test_fleet_status_shows_health_last_round_and_rejections_per_device(tmp_path: Path) -> None:
    # Prepare
    store = StateStore(tmp_path / "agg.sqlite")
    core = _core(read_snapshot(store))
    round_one = _announcement(_apply(store, core.start(100.0), 100.0))
    health = {"free_disk_bytes": 5 << 30, "cpu_temp_c": 51.5, "store_bytes": 2048,
              "outbox_backlog": 1}  # fmt: skip

    # Execute
    _apply(store, core.handle(_status("pi-a", **health), 101.0), 101.0)
    _apply(store, core.handle(_status("pi-a"), 101.5), 101.5)  # no health: last one stays
    _apply(store, core.handle(_status("pi-b"), 101.0), 101.0)
    _apply(store, core.handle(_update("pi-a", round_one, 1.0), 102.0), 102.0)
    _apply(store, core.handle(_update("pi-b", round_one, 1.0), 103.0), 103.0)  # closes round 1
    _apply(store, core.handle(_update("pi-b", round_one, 1.0, sequence=2), 103.5), 103.5)
    _apply(store, core.handle(MessageArrived(update_topic(FLEET, "pi-c"), b"junk"), 104.0), 104.0)
    _apply(store, core.handle(_status("pi-b", online=False), 105.0), 105.0)
    rows = {row.device_id: row for row in fleet_rows(store.devices(), None)}

    # Assert
    assert sorted(rows) == ["pi-a", "pi-b", "pi-c"]
    assert rows["pi-a"].online and rows["pi-a"].last_round == 1
    assert (rows["pi-a"].cpu_temp_c, rows["pi-a"].outbox_backlog) == (51.5, 1)
    assert not rows["pi-b"].online and rows["pi-b"].last_seen_unix == 105.0
    assert rows["pi-b"].last_round == 1 and rows["pi-b"].rejections == {"stale": 1}
    assert rows["pi-c"].rejections == {"malformed": 1} and rows["pi-c"].last_round is None
    assert "disk=5.0G temp=52C store=2.0k outbox=1" in format_row(rows["pi-a"], now=110.0)
    store.close()


def test_fleet_rows_join_the_registry_including_devices_never_heard_of() -> None:
    registered = {
        "dev1": DeviceEntry("dev1", "00" * 32),
        "dev2": DeviceEntry("dev2", "00" * 32, True),
    }
    rows = fleet_rows([], registered)
    assert [(r.device_id, r.registry, r.last_seen_unix) for r in rows] == [
        ("dev1", "trusted", None),
        ("dev2", "revoked", None),
    ]
    assert "never" in format_row(rows[0], now=0.0)


def test_waiting_line_names_the_online_devices_a_round_still_waits_for() -> None:
    core = _core()
    announcement = _announcement(core.start(0.0))
    for device in ("a", "b"):
        core.handle(_status(device), 1.0)
    assert core.waiting_line(10.0) == "round 1: waiting for a, b (0/1 for quorum, deadline in 20s)"
    core.handle(_update("a", announcement, 1.0), 11.0)  # quorum met, b still online: waits
    assert core.waiting_line(12.0) == "round 1: waiting for b (1/1 for quorum, deadline in 18s)"


def test_a_device_above_every_version_is_told_to_rejoin_in_one_log_line() -> None:
    core = _core()
    core.start(0.0)
    lines = [e.line for e in core.handle(_status("old-pi", version=7), 1.0) if isinstance(e, Log)]
    assert lines == ["device old-pi: installed version 7 is above the aggregator's latest 0;"
                     " it should rejoin on 0"]  # fmt: skip


def _mean_value_accuracy(weights: Weights) -> float:
    """A stand-in holdout score that falls as the head's values grow: 1 - mean."""
    return 1.0 - float(np.mean(weights[0]))


def test_promotion_gate_holds_back_a_worse_head_and_says_why(tmp_path: Path) -> None:
    # Prepare
    store = StateStore(tmp_path / "agg.sqlite")
    core = _core(read_snapshot(store), evaluate=_mean_value_accuracy, margin=0.05)
    round_one = _announcement(_apply(store, core.start(0.0), 0.0))

    # Execute: round 1 gains nothing but loses only 0.01 (published), round 2 loses 0.5
    first = _apply(store, core.handle(_update("a", round_one, 0.01), 1.0), 1.0)
    round_two = _announcement(first)
    second = _apply(store, core.handle(_update("a", round_two, 0.5, sequence=2), 2.0), 2.0)

    # Assert
    closed = [e for e in first + second if isinstance(e, StoreClosedRound)]
    assert [c.metrics.status for c in closed] == ["aggregated", "held_back"]
    held = closed[1].metrics
    assert held.model_version == 1 and held.accuracy == pytest.approx(0.99)
    assert held.candidate_accuracy == pytest.approx(0.49)
    assert "more than 0.05 below the best 1.0000" in held.held_back
    assert not [e for e in second if isinstance(e, Publish) and e.topic == model_topic(FLEET, 2)]
    assert [e.round_id for e in second if isinstance(e, StoreCandidate)] == [2]
    assert _announcement(second).model_version == 1  # round 3 stays on the published head
    assert store.candidates() == {2: pytest.approx(0.49)}
    assert store.latest_version().version == 1  # type: ignore[union-attr]
    store.close()


def test_without_a_margin_every_head_is_published_and_scored() -> None:
    core = _core(evaluate=_mean_value_accuracy)
    announcement = _announcement(core.start(0.0))
    effects = core.handle(_update("a", announcement, 0.5), 1.0)
    closed = [e for e in effects if isinstance(e, StoreClosedRound)]
    assert closed[0].metrics.status == "aggregated" and closed[0].version is not None
    assert closed[0].metrics.accuracy == pytest.approx(0.5)


def test_rollback_publishes_the_old_weights_as_the_newest_version(tmp_path: Path) -> None:
    # Prepare: version 1 from round 1, round 2 left open (the aggregator stopped mid-round)
    store = StateStore(tmp_path / "agg.sqlite")
    core = _core(read_snapshot(store))
    round_one = _announcement(_apply(store, core.start(0.0), 0.0))
    _apply(store, core.handle(_update("a", round_one, 2.0), 1.0), 1.0)

    # Execute
    version = store.roll_back(0, now=5.0)
    restarted = _core(read_snapshot(store))
    effects = _apply(store, restarted.start(6.0), 6.0)

    # Assert
    assert version == 2
    model = decode_message(next(e for e in effects if isinstance(e, Publish)
                                and e.topic == model_topic(FLEET, 2)).payload)  # fmt: skip
    assert isinstance(model, GlobalModel) and model.parent_version == 0
    np.testing.assert_array_equal(model.weights[0], HEAD[0])
    announcement = _announcement(effects)
    assert (announcement.round_id, announcement.model_version) == (3, 2)
    assert [r.status for r in store.rounds()] == ["closed", "closed", "open"]
    assert store.rounds()[1].metrics == {"round": 2, "status": "abandoned"}
    store.close()


def test_rollback_resets_the_promotion_bar(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "agg.sqlite")
    core = _core(read_snapshot(store), evaluate=_mean_value_accuracy, margin=0.0)
    round_one = _announcement(_apply(store, core.start(0.0), 0.0))
    _apply(store, core.handle(_update("a", round_one, -0.5), 1.0), 1.0)  # accuracy 1.5: best
    assert read_snapshot(store).best_accuracy == pytest.approx(1.5)
    store.roll_back(0, now=2.0)
    assert read_snapshot(store).best_accuracy is None
    store.close()


def _held_back_state(path: Path) -> StateStore:
    """Round 1 published (version 1), round 2's worse aggregate held back, round 3 open."""
    store = StateStore(path)
    core = _core(read_snapshot(store), evaluate=_mean_value_accuracy, margin=0.05)
    round_one = _announcement(_apply(store, core.start(0.0), 0.0))
    round_two = _announcement(_apply(store, core.handle(_update("a", round_one, 0.01), 1.0), 1.0))
    _apply(store, core.handle(_update("a", round_two, 0.5, sequence=2), 2.0), 2.0)
    return store


def test_promote_publishes_the_held_back_candidate_as_the_newest_version(tmp_path: Path) -> None:
    # Prepare
    store = _held_back_state(tmp_path / "agg.sqlite")
    best_before = read_snapshot(store).best_accuracy

    # Execute
    version = store.promote(2, now=5.0)
    restarted = _core(read_snapshot(store), evaluate=_mean_value_accuracy, margin=0.05)
    effects = _apply(store, restarted.start(6.0), 6.0)

    # Assert
    assert version == 2 and best_before == pytest.approx(1.0)
    model = decode_message(next(e for e in effects if isinstance(e, Publish)
                                and e.topic == model_topic(FLEET, 2)).payload)  # fmt: skip
    assert isinstance(model, GlobalModel) and model.parent_version == 1  # round 2's base
    np.testing.assert_allclose(model.weights[0], 0.51, atol=1e-6)  # 0.01 then the 0.5 step
    announcement = _announcement(effects)
    assert (announcement.round_id, announcement.model_version) == (4, 2)  # round 3 abandoned
    assert store.rounds()[2].metrics == {"round": 3, "status": "abandoned"}
    assert read_snapshot(store).best_accuracy is None  # the bar restarts from the chosen head
    with pytest.raises(KeyError, match="already version 2"):
        store.promote(2, now=7.0)
    with pytest.raises(KeyError, match="no held-back candidate of round 1"):
        store.promote(1, now=7.0)
    store.close()


def test_promote_command_and_status_name_the_candidate(tmp_path: Path) -> None:
    import io

    from iomt.cli import main
    from iomt.environment import Environment

    _held_back_state(tmp_path / "agg.sqlite").close()
    state = str(tmp_path / "agg.sqlite")

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        return main(list(argv), Environment(stdout=out, stderr=err)), out.getvalue(), err.getvalue()

    status, text, _ = run("aggregator", "status", "--state", state)
    assert status == 0 and "`iomt aggregator promote 2` publishes it" in text
    status, _, err = run("aggregator", "promote", "1", "--state", state)
    assert status == 2 and "held-back rounds: 2" in err and err.count("\n") == 1
    status, text, _ = run("aggregator", "promote", "2", "--state", state)
    assert status == 0 and text.startswith("version 2 = the candidate of round 2")
    with StateStore(tmp_path / "agg.sqlite") as store:
        assert store.latest_version().version == 2  # type: ignore[union-attr]
