"""`iomt data prepare`, run in-process with its own streams."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np

from iomt.cli import main
from iomt.environment import Environment, ExitStatus
from training.datasets import simulated_stress
from training.datasets.window_dataset import load_window_dataset


def _run(argv, tmp_path):
    env = Environment(
        stdout=io.StringIO(), stderr=io.StringIO(), config_dir=tmp_path, interactive=False
    )
    status = main(argv, env)
    return status, env.stdout.getvalue(), env.stderr.getvalue()


def test_prepare_simulated_stress_writes_file_and_json_summary(tmp_path):
    out = tmp_path / "stress.npz"
    status, stdout, _ = _run(
        ["data", "prepare", "simulated-stress", "--out", str(out), "--subjects", "2", "--json"],
        tmp_path,
    )
    assert status == ExitStatus.SUCCESS
    summary = json.loads(stdout)
    assert summary["subjects"] == [1, 2] and summary["channels"] == ["hr", "hr_diff"]
    assert load_window_dataset(out).num_windows == summary["windows"]


def test_lab_subjects_are_recorded_in_the_lab_and_checked(tmp_path):
    out = tmp_path / "stress.npz"
    args = ["data", "prepare", "simulated-stress", "--out", str(out), "--subjects", "2"]
    status, _, _ = _run([*args, "--lab-subjects", "2"], tmp_path)
    assert status == ExitStatus.SUCCESS
    lab = load_window_dataset(out)
    expected = simulated_stress.prepare(seed=0, subjects=2, lab_subjects=[2])
    np.testing.assert_array_equal(lab.X, expected.X)
    refused = tmp_path / "refused.npz"
    status, _, stderr = _run([*args[:4], str(refused), *args[5:], "--lab-subjects", "3"], tmp_path)
    assert status == ExitStatus.USAGE and stderr.count("\n") == 1
    assert "--lab-subjects [3]: the simulator draws subjects 1..2" in stderr
    status, _, stderr = _run(
        ["data", "prepare", "watch", "--out", str(refused), "--lab-subjects", "1"], tmp_path
    )
    assert status == ExitStatus.USAGE
    assert "--lab-subjects applies to the simulated-stress source only" in stderr
    assert not refused.exists()


def test_prepare_watch_prints_one_line_summary(tmp_path):
    status, stdout, _ = _run(
        ["data", "prepare", "watch", "--out", str(tmp_path / "w.npz")], tmp_path
    )
    assert status == ExitStatus.SUCCESS
    assert stdout.count("\n") == 1
    assert "3605 windows of 128 samples at 50 Hz, 10 subjects, 7 classes" in stdout


def test_missing_path_for_file_source_is_a_usage_error(tmp_path):
    status, _, stderr = _run(
        ["data", "prepare", "wisdm", "--out", str(tmp_path / "x.npz")], tmp_path
    )
    assert status == ExitStatus.USAGE
    assert stderr.strip() == (
        "iomt data: error: source 'wisdm' reads files: give PATH (WISDM_ar_v1.1_raw.txt)"
    )


def test_unknown_source_and_bad_file_are_one_line_errors(tmp_path):
    status, _, stderr = _run(
        ["data", "prepare", "mnist", "--out", str(tmp_path / "x.npz")], tmp_path
    )
    assert status == ExitStatus.USAGE and "unknown dataset source 'mnist'" in stderr
    bad = tmp_path / "WISDM_ar_v1.1_raw.txt"
    bad.write_text("33,Jogging,1,0.1,0.2\n")
    status, _, stderr = _run(
        ["data", "prepare", "wisdm", str(bad), "--out", str(tmp_path / "x.npz")], tmp_path
    )
    assert status == ExitStatus.ERROR
    assert stderr.count("\n") == 1 and "WISDM_ar_v1.1_raw.txt:1:" in stderr


def test_dataset_package_does_not_pull_in_tensorflow():
    probe = (
        "import sys; import training.datasets.sources, training.datasets.simulated_stress, "
        "iomt.commands.data; print('tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_more_simulated_subjects_add_people_and_leave_the_first_ones_as_they_were(tmp_path):
    few, more = tmp_path / "few.npz", tmp_path / "more.npz"
    for out, count in ((few, "2"), (more, "4")):
        status, _, _ = _run(
            ["data", "prepare", "simulated-stress", "--out", str(out), "--subjects", count],
            tmp_path,
        )
        assert status == ExitStatus.SUCCESS
    first, larger = load_window_dataset(few), load_window_dataset(more)
    assert list(larger.subjects) == [1, 2, 3, 4]
    kept = larger.for_subjects([1, 2])
    for name in ("X", "y", "subject", "recording", "start_s"):
        np.testing.assert_array_equal(getattr(first, name), getattr(kept, name), err_msg=name)
