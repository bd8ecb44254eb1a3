"""Buffered asynchronous rounds over a real Mosquitto with real device processes.

Two fast devices fill the first two buffers (K = 2) and leave; two devices whose training lasts
20 s (a real wait) come back with deltas trained on version 0 when version 2 is out: past the
staleness cap of 1, so both are refused as `too_stale`. They pick up version 2, train again,
and their fresh updates make version 3.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.state_store import StateStore
from edge_runtime.sample_store import SampleStore

pytestmark = [pytest.mark.integration, pytest.mark.tf]

SLOW_TRAIN_S = "20"


def _aggregator_args(url: str, task, state: Path) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        "aggregator", "--broker", url, "--fleet", "buffered", "--bundle", str(task.bundle_path),
        "--state", str(state), "--rounds", "3", "--mode", "async", "--buffer-size", "2",
        "--max-staleness", "1", "--codec", "int8", "--json",
    ]  # fmt: skip


def _edge_args(url: str, task, name: str, subject: int, root: Path, *extra: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        "edge", "--broker", url, "--fleet", "buffered", "--device-id", name,
        "--bundle", str(task.bundle_path), "--store", str(root / f"{name}.sqlite"),
        "--replay", str(task.data_path), "--subject", str(subject), "--speed", "0",
        "--max-rounds", "2", "--json", *extra,
    ]  # fmt: skip


def _outcomes(path: Path) -> list[tuple[int, int, str | None]]:
    """Each round the device sent: its id, the version it trained on, how it ended."""
    with SampleStore(path) as store:
        outcomes = store.round_outcomes()
        sent = sorted(store.recent_rounds(100), key=lambda r: r.round_id)
    return [(r.round_id, r.base_version, outcomes.get(r.round_id)) for r in sent]


def test_slow_devices_past_the_staleness_cap_are_refused_then_rejoin_on_the_new_version(
    mosquitto, tiny_task, processes, tmp_path: Path
) -> None:
    # Execute: every device is connected and waiting before the aggregator announces version 0,
    # so the fast ones publish versions 1 and 2 well within the slow ones' training
    url, state = mosquitto.url, tmp_path / "agg.sqlite"
    slow = [processes.start(name, _edge_args(url, tiny_task, name, subject, tmp_path,
                                             "--min-train-time", SLOW_TRAIN_S))
            for name, subject in (("slow0", 0), ("slow1", 1))]  # fmt: skip
    fast = [processes.start(name, _edge_args(url, tiny_task, name, subject, tmp_path))
            for name, subject in (("fast0", 2), ("fast1", 0))]  # fmt: skip
    for device in (*slow, *fast):
        device.wait_for('"event": "connected"')
    aggregator = processes.start("agg", _aggregator_args(url, tiny_task, state))

    # Assert: every process ends by itself; three versions
    assert [p.finish(timeout_s=180) for p in (aggregator, *fast, *slow)] == [0] * 5
    with StateStore(state) as store:
        latest = store.latest_version()
        assert latest is not None and latest.version == 3
        buffers = {r: sorted(u.device_id for u in store.accepted_updates(r)) for r in (1, 2, 3)}
        assert store.rejections(3).get("too_stale") == 2
    assert buffers == {1: ["fast0", "fast1"], 2: ["fast0", "fast1"], 3: ["slow0", "slow1"]}
    for name in ("slow0", "slow1"):
        assert _outcomes(tmp_path / f"{name}.sqlite") == [(1, 0, "too_stale"), (3, 2, "accepted")]
