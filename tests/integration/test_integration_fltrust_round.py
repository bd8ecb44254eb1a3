"""FLTrust through the service: the aggregator fine-tunes on its root set each round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.tf]

FLEET = "fltrust"


def test_fltrust_round_uses_the_root_set(mosquitto, tiny_task, processes, tmp_path: Path) -> None:
    # Prepare
    metrics = tmp_path / "metrics.jsonl"
    started = [processes.start("aggregator", [
        "aggregator", "--broker", mosquitto.url, "--fleet", FLEET,
        "--bundle", str(tiny_task.bundle_path), "--state", str(tmp_path / "agg.sqlite"),
        "--rounds", "1", "--min-clients", "2", "--deadline", "60", "--strategy", "fltrust",
        "--root-set", str(tiny_task.holdout_path), "--metrics-out", str(metrics),
    ])]  # fmt: skip

    # Execute
    for device in (0, 1):
        started.append(processes.start(f"dev{device}", [
            "edge", "--broker", mosquitto.url, "--fleet", FLEET, "--device-id", f"dev{device}",
            "--bundle", str(tiny_task.bundle_path), "--store", str(tmp_path / f"d{device}.sqlite"),
            "--replay", str(tiny_task.data_path), "--subject", str(device), "--speed", "0",
            "--max-rounds", "1",
        ]))  # fmt: skip

    # Assert
    assert [p.finish(timeout_s=120) for p in started] == [0, 0, 0]
    (round_metrics,) = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert (round_metrics["status"], round_metrics["participants"]) == ("aggregated", 2)
    assert round_metrics["rejected"] == {}


def test_fltrust_without_a_root_set_is_a_usage_error(tiny_task, processes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    process = processes.start("aggregator", [
        "aggregator", "--broker", "mqtt://127.0.0.1:1", "--fleet", FLEET,
        "--bundle", str(tiny_task.bundle_path), "--state", str(tmp_path / "agg.sqlite"),
        "--strategy", "fltrust",
    ])  # fmt: skip
    assert process.finish(timeout_s=60) == 2
    assert "--root-set" in (tmp_path / "aggregator.stderr").read_text()
