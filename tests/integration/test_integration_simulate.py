"""`iomt simulate` end to end on a tiny dataset: real training, conversion, Mosquitto, processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aggregator.broker import find_mosquitto
from training.datasets.window_dataset import WindowDataset, save_window_dataset

pytestmark = [pytest.mark.integration, pytest.mark.tf]

SUBJECTS = (1, 2, 3, 4, 5, 6, 7)  # 1, 2 pretrain; 3 validates; 4-6 devices; 7 test


def _tiny_har(path: Path) -> Path:
    """Three activities that differ in frequency and offset, with per-subject gain."""
    rng = np.random.default_rng(0)
    X, y, subject = [], [], []
    for s in SUBJECTS:
        gain = rng.uniform(0.8, 1.2)
        for label in range(3):
            for _ in range(24):
                t = np.linspace(0, 1, 32)
                wave = np.sin(2 * np.pi * 2 * (label + 1) * t + rng.uniform(0, 6))
                window = np.stack([wave, 0.5 * wave, np.full(32, label)], axis=1) * gain
                X.append(window + rng.normal(0, 0.1, window.shape))
                y.append(label)
                subject.append(s)
    dataset = WindowDataset(
        X=np.array(X),
        y=np.array(y),
        subject=np.array(subject),
        labels=("slow", "mid", "fast"),
        channels=("ax", "ay", "az"),
        sample_rate_hz=32.0,
    )
    save_window_dataset(dataset, path)
    return path


def _simulate_args(tmp_path: Path, data: Path, rounds: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "iomt.cli",
        "simulate",
        "--task",
        "har",
        "--data",
        str(data),
        "--devices",
        "3",
        "--rounds",
        str(rounds),
        "--pretrain-subjects",
        "1,2",
        "--test-subjects",
        "7",
        "--epochs",
        "6",
        "--model-size",
        "mcu",
        "--min-agreement",
        "0.8",
        "--deadline",
        "30",
        "--out",
        str(tmp_path / "sim"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
    ]


@pytest.fixture()
def tiny_data(tmp_path: Path) -> Path:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    return _tiny_har(tmp_path / "tiny.npz")


def test_small_simulation_completes_and_reports(tmp_path: Path, tiny_data: Path) -> None:
    # Execute
    completed = subprocess.run(
        _simulate_args(tmp_path, tiny_data, rounds=2),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Assert
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "sim" / "report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    for row in report["rounds"]:
        assert row["participants"] == 3
        assert row["bytes_up"] > 0 and row["bytes_down"] > 0
        assert row["rejected"] == 0
    summary = report["summary"]
    for key in ("pretrained", "federated", "personalised", "pooled_upper_bound", "local_only"):
        assert 0.0 <= summary[key] <= 1.0
    assert report["config"]["device_subjects"] == [4, 5, 6]
    # one test subject: that person's accuracy is the table's
    assert report["per_test_subject"]["7"] == {
        "pretrained": summary["pretrained"],
        "federated": summary["federated"],
    }
    assert report["pooled"]["pretrained_recipe"] in report["pooled"]["validation"]
    assert (
        "Held out in turn, each device's person scores"
        in (tmp_path / "sim" / "report.md").read_text()
    )
    for name in (
        "report.md",
        "accuracy_per_round.png",
        "bytes_per_round.png",
        "personalisation.png",
    ):
        assert (tmp_path / "sim" / name).stat().st_size > 0
    assert json.loads(completed.stdout)["summary"] == summary


def _children_of_run(tmp_path: Path) -> list[int]:
    """Processes whose command line names this test's directory (ours and our children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(tmp_path) in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def test_ctrl_c_stops_every_process_it_started(tmp_path: Path, tiny_data: Path) -> None:
    # Prepare: a long run, interrupted once its devices are up
    process = subprocess.Popen(
        _simulate_args(tmp_path, tiny_data, rounds=50),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    logs = tmp_path / "sim" / "fleet" / "logs"
    deadline = time.monotonic() + 500
    while not (logs / "dev-03.log").exists():
        assert process.poll() is None, "simulate exited before starting its fleet"
        assert time.monotonic() < deadline, "the fleet never started"
        time.sleep(0.5)
    assert len(_children_of_run(tmp_path)) >= 4  # simulate, aggregator, devices
    # Execute
    process.send_signal(signal.SIGINT)
    status = process.wait(timeout=60)
    # Assert
    assert status == 130
    assert _children_of_run(tmp_path) == []


def test_mixed_fleet_trains_on_a_qemu_microcontroller_and_says_which(
    tmp_path: Path, tiny_data: Path
) -> None:
    # Prepare: one of the three devices is the C firmware under QEMU behind its relay
    if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("firmware toolchain missing: run `make firmware`")
    args = [*_simulate_args(tmp_path, tiny_data, rounds=2), "--mcu-devices", "1"]
    # Execute
    completed = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    # Assert: every device in every round, the last one trained on the MCU, said so
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "sim" / "report.json").read_text())
    assert [r["participants"] for r in report["rounds"]] == [3, 3]
    kinds = {d: row["trained_on"] for d, row in report["devices"].items()}
    assert sorted(kinds.values()) == ["mcu", "pi", "pi"]
    mcu_device = next(d for d, kind in kinds.items() if kind == "mcu")
    logs = tmp_path / "sim" / "fleet" / "logs"
    assert '"port"' in (logs / f"{mcu_device}-mcu.log").read_text()
    device_log = (logs / f"{mcu_device}.log").read_text()
    assert "mcu_train_failed" not in device_log
    assert "| mcu |" in (tmp_path / "sim" / "report.md").read_text()
