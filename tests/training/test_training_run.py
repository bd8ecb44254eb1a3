"""`iomt train` / `iomt evaluate` end to end on a tiny separable dataset (real TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iomt.cli import main
from training.datasets.window_dataset import WindowDataset, save_window_dataset

pytestmark = pytest.mark.tf


def _tiny_dataset(path: Path) -> Path:
    rng = np.random.default_rng(0)
    subjects, labels, windows = [], [], []
    for subject in range(1, 7):
        for label in range(3):
            for _ in range(12):
                t = np.linspace(0, 1, 32)
                wave = np.sin(2 * np.pi * (label + 1) * 2 * t + rng.uniform(0, 6))
                window = np.stack([wave, 0.5 * wave, rng.normal(0, 0.1, 32)], axis=1)
                windows.append(window + label + rng.normal(0, 0.1, window.shape))
                subjects.append(subject)
                labels.append(label)
    dataset = WindowDataset(
        X=np.array(windows, np.float32),
        y=np.array(labels),
        subject=np.array(subjects),
        labels=("slow", "mid", "fast"),
        channels=("ax", "ay", "az"),
        sample_rate_hz=32.0,
    )
    save_window_dataset(dataset, path)
    return path


def _train_argv(data: Path, out: Path, *options: str) -> list[str]:
    """A small mcu LSTM-FCN on the tiny dataset: test subjects 5, 6, validation 4."""
    argv = ["train", "--data", str(data), "--arch", "lstm-fcn", "--size", "mcu"]
    return [*argv, "--out", str(out), "--test-subjects", "5,6", "--val-subjects", "4", *options]


def test_train_then_evaluate_writes_the_documented_files(tmp_path: Path, capsys) -> None:
    # Prepare
    data = _tiny_dataset(tmp_path / "tiny.npz")
    out = tmp_path / "runs" / "tiny"
    # Execute
    status = main(_train_argv(data, out, "--epochs", "4", "--prune-epochs", "3", "--json"))
    # Assert
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1"):
        assert 0.0 <= metrics["test"][key] <= 1.0
    assert metrics["test_subjects"] == [5, 6] and metrics["val_subjects"] == [4]
    assert abs(metrics["sparsity"] - 0.5) <= 0.02
    assert metrics["test"]["accuracy"] > 0.6  # three well-separated frequencies
    for name in ("config.json", "weights.h5", "normalisation.json", "split.json", "history.json"):
        assert (out / name).exists()
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(data), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["float"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert (out / "confusion.png").stat().st_size > 1000


def test_train_rejects_a_missing_data_file_in_one_line(tmp_path: Path, capsys) -> None:
    status = main(
        [
            "train",
            "--data",
            str(tmp_path / "none.npz"),
            "--arch",
            "bilstm",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status != 0
    assert len(err) == 1 and "none.npz" in err[0]


def test_bilstm_builds_with_named_embedding_and_head() -> None:
    from training.models import build_model, default_config

    model = build_model(default_config("bilstm", "mcu"), 64, 2, 2, batch_size=1)
    assert model.get_layer("embedding").output.shape[-1] == 24
    assert model.get_layer("head_1").output.shape == (1, 2)


def test_refit_runs_the_full_schedule_and_records_the_subjects_it_trained_on(
    tmp_path: Path, capsys
) -> None:
    # Prepare
    data = _tiny_dataset(tmp_path / "tiny.npz")
    out = tmp_path / "runs" / "refit"
    # Execute: patience 1 would stop a selecting fit early; the refit ignores it
    argv = _train_argv(data, out, "--epochs", "3", "--patience", "1", "--sparsity", "0")
    status = main([*argv, "--refit"])
    # Assert
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    split = json.loads((out / "split.json").read_text())
    assert [row["phase"] for row in history] == ["validation"] * 3 + ["dense"] * 3
    assert metrics["epochs_trained"] == 3
    assert metrics["train_subjects"] == [1, 2, 3, 4] == split["train_subjects"]
    assert metrics["val_subjects"] == [4] and metrics["test_subjects"] == [5, 6]
    assert json.loads((out / "config.json").read_text())["refit"] is True
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(data), "--subjects", "val"]) == 0
    assert "subjects [4] trained this model" in capsys.readouterr().err
