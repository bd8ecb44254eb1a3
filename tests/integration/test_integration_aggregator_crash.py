"""kill -9 of the aggregator mid-round: the restarted run ends on the very same global head."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from federation.state_store import StateStore

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


def test_kill_9_mid_round_then_restart_gives_the_uninterrupted_head(
    mosquitto, tiny_task, processes, tmp_path: Path
) -> None:
    # Prepare: the uninterrupted reference run
    url = mosquitto.url
    reference_state = tmp_path / "reference.sqlite"
    agg_args = _aggregator_args(url, "ref", tiny_task, reference_state)
    reference = [processes.start("ref-agg", agg_args)]
    for device in (0, 1):
        edge_args = _edge_args(url, "ref", tiny_task, device, tmp_path / f"ref-d{device}.sqlite")
        reference.append(processes.start(f"ref-d{device}", edge_args))
    assert [p.finish(timeout_s=120) for p in reference] == [0, 0, 0]

    # Execute: device 0 reports, the aggregator dies by SIGKILL, restarts, device 1 reports
    state = tmp_path / "crash.sqlite"
    first = processes.start("agg-1", _aggregator_args(url, "crash", tiny_task, state))
    dev0 = processes.start("d0", _edge_args(url, "crash", tiny_task, 0, tmp_path / "d0.sqlite"))
    first.wait_for("round 1: accepted dev0")
    first.popen.send_signal(signal.SIGKILL)
    assert first.finish() == -signal.SIGKILL
    second = processes.start("agg-2", _aggregator_args(url, "crash", tiny_task, state))
    second.wait_for("round 1: resumed with 1 accepted updates")
    dev1 = processes.start("d1", _edge_args(url, "crash", tiny_task, 1, tmp_path / "d1.sqlite"))
    assert [p.finish(timeout_s=120) for p in (second, dev0, dev1)] == [0, 0, 0]

    # Assert
    reference_version, reference_head = _final_head(reference_state)
    version, head = _final_head(state)
    assert version == reference_version == ROUNDS
    for got, want in zip(head, reference_head, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    assert _updates_per_round(state) == _updates_per_round(reference_state)
    assert [count for _, count, _ in _updates_per_round(state)] == [2] * ROUNDS
