"""kill -9 of the aggregator mid-round: the restarted run ends on the very same global head."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aggregator.state_store import StateStore

pytestmark = [pytest.mark.integration, pytest.mark.tf]

ROUNDS = 2


def _aggregator_args(url: str, fleet: str, task, state: Path) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        "aggregator", "--broker", url, "--fleet", fleet, "--bundle", str(task.bundle_path),
        "--state", str(state), "--rounds", str(ROUNDS), "--min-clients", "2",
        "--deadline", "120", "--codec", "int8", "--json",
    ]  # fmt: skip


def _edge_args(url: str, fleet: str, task, device: int, store: Path) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        "edge", "--broker", url, "--fleet", fleet, "--device-id", f"dev{device}",
        "--bundle", str(task.bundle_path), "--store", str(store), "--replay", str(task.data_path),
        "--subject", str(device), "--speed", "0", "--max-rounds", str(ROUNDS), "--json",
    ]  # fmt: skip


def _final_head(state: Path) -> tuple[int, list[np.ndarray]]:
    with StateStore(state) as store:
        latest = store.latest_version()
        assert latest is not None
        return latest.version, store.load_weights(latest.version)


def _updates_per_round(state: Path) -> list[tuple[int, int, int]]:
    with sqlite3.connect(state) as db:
        return db.execute(
            "SELECT round_id, COUNT(*), SUM(num_examples) FROM updates GROUP BY round_id"
        ).fetchall()


@pytest.fixture(scope="module")
def reference_state(mosquitto, tiny_task, process_group_class, tmp_path_factory) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """The state file of an uninterrupted run with the same devices and seeds."""
    root = tmp_path_factory.mktemp("reference")
    group = process_group_class(root)
    url, state = mosquitto.url, root / "reference.sqlite"
    started = [group.start("ref-agg", _aggregator_args(url, "ref", tiny_task, state))]
    for device in (0, 1):
        edge_args = _edge_args(url, "ref", tiny_task, device, root / f"ref-d{device}.sqlite")
        started.append(group.start(f"ref-d{device}", edge_args))
    try:
        assert [p.finish(timeout_s=120) for p in started] == [0, 0, 0]
        yield state
    finally:
        group.kill_all()


def _assert_same_run(state: Path, reference: Path) -> None:
    reference_version, reference_head = _final_head(reference)
    version, head = _final_head(state)
    assert version == reference_version == ROUNDS
    for got, want in zip(head, reference_head, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    assert _updates_per_round(state) == _updates_per_round(reference)
    assert [count for _, count, _ in _updates_per_round(state)] == [2] * ROUNDS


def test_kill_9_mid_round_then_restart_gives_the_uninterrupted_head(
    mosquitto, tiny_task, processes, reference_state, tmp_path: Path
) -> None:
    # Execute: device 0 reports, the aggregator dies by SIGKILL, restarts, device 1 reports
    url, state = mosquitto.url, tmp_path / "crash.sqlite"
    first = processes.start("agg-1", _aggregator_args(url, "crash", tiny_task, state))
    dev0 = processes.start("d0", _edge_args(url, "crash", tiny_task, 0, tmp_path / "d0.sqlite"))
    first.wait_for("round 1: accepted dev0")
    first.popen.send_signal(signal.SIGKILL)
    assert first.finish() == -signal.SIGKILL
    second = processes.start("agg-2", _aggregator_args(url, "crash", tiny_task, state))
    second.wait_for("round 1: resumed with 1 accepted updates")
    dev1 = processes.start("d1", _edge_args(url, "crash", tiny_task, 1, tmp_path / "d1.sqlite"))

    # Assert
    assert [p.finish(timeout_s=120) for p in (second, dev0, dev1)] == [0, 0, 0]
    _assert_same_run(state, reference_state)


def test_kill_9_while_devices_keep_sending_then_restart_gives_the_uninterrupted_head(
    mosquitto, tiny_task, processes, reference_state, tmp_path: Path
) -> None:
    # Execute: both devices run throughout; the aggregator dies at its first accept of round 2,
    # so the other device's update reaches the broker while nobody is there to take it
    url, state = mosquitto.url, tmp_path / "crash.sqlite"
    first = processes.start("agg-1", _aggregator_args(url, "crash2", tiny_task, state))
    devices = [
        processes.start(f"d{d}", _edge_args(url, "crash2", tiny_task, d, tmp_path / f"d{d}.sqlite"))
        for d in (0, 1)
    ]
    first.wait_for("round 2: accepted")
    first.popen.send_signal(signal.SIGKILL)
    assert first.finish() == -signal.SIGKILL
    second = processes.start("agg-2", _aggregator_args(url, "crash2", tiny_task, state))

    # Assert
    assert [p.finish(timeout_s=120) for p in (second, *devices)] == [0, 0, 0]
    _assert_same_run(state, reference_state)
