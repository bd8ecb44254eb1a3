"""The real pipeline end to end: `iomt train` -> `iomt convert` -> a federated round over MQTT."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from iomt.cli import main
from iomt.environment import Environment

pytestmark = [pytest.mark.integration, pytest.mark.tf, pytest.mark.slow]

FLEET = "converted"


def _iomt(argv: list[str], config_dir: Path) -> None:
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), config_dir=config_dir)
    code = main(argv, env)
    assert code == 0, env.stderr.getvalue()  # type: ignore[attr-defined]


def test_round_on_a_bundle_made_by_iomt_convert(
    mosquitto, make_windows, processes, tmp_path: Path
) -> None:
    # Prepare: six synthetic subjects, a tiny LSTM-FCN trained and converted by the CLI
    data_path = tmp_path / "data6.npz"
    np.savez(data_path, **make_windows(subjects=6, per_subject=40, seed=1))
    config = tmp_path / "config"
    _iomt(["train", "--data", str(data_path), "--arch", "lstm-fcn", "--size", "mcu",
           "--out", str(tmp_path / "run"), "--epochs", "1", "--prune-epochs", "0",
           "--sparsity", "0", "--test-subjects", "5", "--val-subjects", "4", "--no-augment"],
          config)  # fmt: skip
    bundle = tmp_path / "bundle"
    _iomt(["convert", str(tmp_path / "run"), "--out", str(bundle)], config)
    metrics = tmp_path / "metrics.jsonl"

    # Execute
    started = [processes.start("aggregator", [
        "aggregator", "--broker", mosquitto.url, "--fleet", FLEET, "--bundle", str(bundle),
        "--state", str(tmp_path / "agg.sqlite"), "--rounds", "1", "--min-clients", "2",
        "--deadline", "60", "--holdout", str(data_path), "--metrics-out", str(metrics),
    ])]  # fmt: skip
    for device in (0, 1):
        started.append(processes.start(f"dev{device}", [
            "edge", "--broker", mosquitto.url, "--fleet", FLEET, "--device-id", f"dev{device}",
            "--bundle", str(bundle), "--store", str(tmp_path / f"d{device}.sqlite"),
            "--replay", str(data_path), "--subject", str(device), "--speed", "0",
            "--max-rounds", "1", "--json",
        ]))  # fmt: skip

    # Assert
    assert [p.finish(timeout_s=120) for p in started] == [0, 0, 0]
    (round_metrics,) = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert round_metrics["participants"] == 2
    assert round_metrics["rejected"] == {}
    assert 0.0 <= round_metrics["accuracy"] <= 1.0
