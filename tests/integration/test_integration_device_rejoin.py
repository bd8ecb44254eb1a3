"""Devices and an aggregator that disagree about where the run is, over real Mosquitto.

A device reused with a fresh aggregator state file (its installed head above every version the
new aggregator has) says so in one line, installs the announced head and takes part in round 1.
A device asked for more rounds than the aggregator closes (a round closed below quorum counts
toward the aggregator's `--rounds`) stops when the aggregator's run is over, with one line and
exit status 0, instead of waiting forever.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.tf]


def _aggregator(url: str, fleet: str, task, state: Path, *extra: str) -> list[str]:  # type: ignore[no-untyped-def]
    return ["aggregator", "--broker", url, "--fleet", fleet, "--bundle", str(task.bundle_path),
            "--state", str(state), "--json", *extra]  # fmt: skip


def _edge(url: str, fleet: str, task, store: Path, *extra: str) -> list[str]:  # type: ignore[no-untyped-def]
    return ["edge", "--broker", url, "--fleet", fleet, "--device-id", "dev0",
            "--bundle", str(task.bundle_path), "--store", str(store),
            "--replay", str(task.data_path), "--subject", "0", "--speed", "0", "--json",
            *extra]  # fmt: skip


def _events(process, name: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    lines = [json.loads(line) for line in process.output() if line.startswith("{")]
    return [line for line in lines if line["event"] == name]


def test_a_device_reused_with_a_fresh_aggregator_state_takes_part_in_round_1(
    mosquitto, tiny_task, processes, tmp_path: Path
) -> None:
    # Prepare: two rounds with a first state file; the device ends on version 2
    fleet, store = "rejoin", tmp_path / "dev0.sqlite"
    first = processes.start("first", _aggregator(mosquitto.url, fleet, tiny_task,
                            tmp_path / "first.sqlite", "--rounds", "2", "--min-clients", "1",
                            "--deadline", "60"))  # fmt: skip
    device = processes.start("dev0-first", _edge(mosquitto.url, fleet, tiny_task, store,
                                                 "--max-rounds", "2"))  # fmt: skip
    assert first.finish(timeout_s=180) == 0 and device.finish(timeout_s=120) == 0
    assert _events(device, "installed")[-1]["version"] == 2

    # Execute: a fresh state file, the same broker, fleet and device store
    fresh = processes.start("fresh", _aggregator(mosquitto.url, fleet, tiny_task,
                            tmp_path / "fresh.sqlite", "--rounds", "1", "--min-clients", "1",
                            "--deadline", "60"))  # fmt: skip
    reused = processes.start("dev0-reused", _edge(mosquitto.url, fleet, tiny_task, store,
                                                  "--max-rounds", "1"))  # fmt: skip
    closed = json.loads(fresh.wait_for('"event": "round_closed"', timeout_s=180))

    # Assert
    assert fresh.finish(timeout_s=60) == 0 and reused.finish(timeout_s=120) == 0
    assert closed["round"] == 1 and closed["status"] == "aggregated"
    assert closed["participants"] == 1
    below = [(e["round"], e["version"], e["installed"], e["rejoin"])
             for e in _events(reused, "round_below_installed")]  # fmt: skip
    # the first run's last round, still retained when the device connects, is closed: no line
    assert below == [(1, 0, 2, True)]
    assert [e["version"] for e in _events(reused, "installed")] == [0, 1]
    assert [(e["round"], e["accepted"]) for e in _events(reused, "ack")] == [(1, True)]


def test_a_device_stops_when_the_run_ends_before_its_max_rounds(
    mosquitto, tiny_task, processes, tmp_path: Path
) -> None:
    # Prepare: a quorum of two with one device: every round closes below quorum at its deadline
    fleet = "run-over"
    aggregator = processes.start("aggregator", _aggregator(mosquitto.url, fleet, tiny_task,
                                 tmp_path / "agg.sqlite", "--rounds", "2", "--min-clients", "2",
                                 "--deadline", "4"))  # fmt: skip
    device = processes.start(
        "dev0",
        _edge(mosquitto.url, fleet, tiny_task, tmp_path / "dev0.sqlite", "--max-rounds", "5"),
    )

    # Execute
    status = aggregator.finish(timeout_s=180)
    device_status = device.finish(timeout_s=120)

    # Assert
    assert status == 0 and device_status == 0
    closed = [json.loads(line) for line in aggregator.output() if '"round_closed"' in line]
    assert [c["status"] for c in closed] == ["below_quorum", "below_quorum"]
    (over,) = _events(device, "run_over")
    assert (over["round"], over["max_rounds"]) == (2, 5)
    assert _events(device, "stop")  # it left the loop and said goodbye
