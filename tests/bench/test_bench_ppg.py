"""`python -m bench ppg` runs end to end and its section renders from what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.ppg import report_section
from bench.report import Plots
from tests.hardware.ppg_recordings_fixture import real_recordings

pytestmark = pytest.mark.slow


def test_bench_ppg_writes_every_figure_and_renders(tmp_path: Path) -> None:
    # Prepare
    real_recordings()  # skips with the install command when heartpy is missing
    out = tmp_path / "ppg.json"
    # Execute
    argv = ["ppg", "--sim-duration-s", "120", "--out", str(out)]  # a 120 s simulated recording
    assert main(argv) == 0
    results = json.loads(out.read_text())
    section = report_section(results, Plots(tmp_path, "plots"))
    # Assert
    names = [row["name"] for row in results["recordings"]]
    assert names == ["data.csv", "data2.csv", "data3.csv"]
    for row in results["recordings"]:
        assert abs(row["mean_hr_error_bpm"]) < 3.0
        assert row["neurokit2_max_offset_samples"] == 0
        assert row["name"] in section
    simulated = results["simulated"]
    recording_length = simulated["duration_s"]  # of the simulated signal, not a timing
    assert recording_length == 120.0 and 0.0 <= simulated["untrusted_share"] < 1.0
    assert simulated["found_share_trusted"] > 0.95
    assert "machine" in results
