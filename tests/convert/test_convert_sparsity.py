"""The sparsity a bundle reports is measured on the saved model, the same in metrics and manifest.

Before, `iomt train` counted only the layers tfmot had wrapped (0.500) while `iomt convert`
counted every kernel of the stress BiLSTM, whose recurrent weights were never pruned (0.006).
Both now use `training.pruning.measure_sparsity` over the backbone's kernels and recurrent
kernels, and the BiLSTM's recurrent weights are pruned. Tiny runs: a few hundred simulated
stress windows, one dense epoch, two pruning epochs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iomt.cli import main
from training.datasets import simulated_stress
from training.datasets.window_dataset import save_window_dataset

pytestmark = pytest.mark.tf

TARGET = 0.5


@pytest.fixture(scope="module")
def stress_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stress") / "stress.npz"
    save_window_dataset(simulated_stress.prepare(seed=0, subjects=4, sessions=1), path)
    return path


@pytest.mark.parametrize("arch", ["bilstm", "lstm-fcn"])
def test_measured_sparsity_is_on_target_in_metrics_manifest_and_convert_output(
    arch: str, stress_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    train = ["train", "--data", str(stress_data), "--arch", arch, "--size", "mcu"]
    train += ["--out", str(run), "--epochs", "1", "--prune-epochs", "2", "--batch-size", "16"]
    train += ["--sparsity", str(TARGET), "--train-subjects", "1,2", "--val-subjects", "3"]
    train += ["--test-subjects", "4", "--json"]
    assert main(train) == 0
    capsys.readouterr()
    # Execute
    status = main(["convert", str(run), "--out", str(bundle), "--min-agreement", "0", "--json"])
    # Assert
    assert status == 0
    printed = json.loads(capsys.readouterr().out)["sparsity"]
    metrics = json.loads((run / "metrics.json").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())["sparsity"]
    assert abs(manifest["measured"] - TARGET) <= 0.02
    assert manifest["target"] == TARGET == metrics["target_sparsity"]
    assert metrics["sparsity"] == pytest.approx(manifest["measured"], abs=1e-9)
    assert printed == manifest
