"""The C pipeline (firmware) gives the Python beats and quality verdicts on the same samples.

iomt_ppg.c, iomt_ppg_quality.c and the ppg_tool harness are built with the host gcc (C99,
-Wall -Wextra -Werror -pedantic); samples go in as float32 on stdin, peaks and verdicts come back
as int32 (`bench.ppg_firmware`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.ppg_firmware import GCC_FLAGS, build_ppg_tool, firmware_analysis, firmware_dir
from hardware.sensors.cardiac import HeartRhythm, beat_times
from hardware.sensors.ppg import PpgSensor, analyse_ppg, ppg_from_beats
from hardware.sensors.ppg_beats import band_pass_ppg, elgendi_peaks
from tests.hardware.ppg_recordings_fixture import real_recordings

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs host gcc")


@pytest.fixture(scope="module")
def ppg_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_ppg_tool(tmp_path_factory.mktemp("ppg_tool"))


def test_c_equals_python_on_real_recordings(ppg_tool: Path) -> None:
    for recording in real_recordings():
        # Execute
        rate = recording.sample_rate_hz
        ours = elgendi_peaks(band_pass_ppg(recording.samples, rate), rate)
        theirs = firmware_analysis(ppg_tool, recording.samples, rate)
        # Assert: same beats within one sample, same verdict for every quality window
        assert theirs.peaks.size == ours.size > 20, recording.name
        assert np.abs(theirs.peaks - ours).max() <= 1, recording.name
        verdicts = analyse_ppg(recording.samples, rate).quality.verdicts
        assert theirs.verdicts == verdicts, recording.name


@pytest.mark.parametrize("rate_hz", [25.0, 64.0, 128.0])
def test_c_equals_python_on_simulated_ppg_with_motion(ppg_tool: Path, rate_hz: float) -> None:
    rng = np.random.default_rng(int(rate_hz))
    beats = beat_times(HeartRhythm(85.0, 30.0, 16.0, 25.0), 300.0, rng)
    sensor = PpgSensor(sample_rate_hz=rate_hz, artefacts_per_min=3.0)
    ppg = ppg_from_beats(beats, 300.0, sensor, rng)
    ours = analyse_ppg(ppg, rate_hz)
    theirs = firmware_analysis(ppg_tool, ppg, rate_hz)
    peaks = elgendi_peaks(band_pass_ppg(ppg, rate_hz), rate_hz)
    assert theirs.peaks.size == peaks.size > 300
    assert np.abs(theirs.peaks - peaks).max() <= 1
    assert theirs.verdicts == ours.quality.verdicts
    assert "ok" in theirs.verdicts and len(set(theirs.verdicts)) > 1  # both kinds were judged


def test_c_refuses_a_rate_without_room_for_the_band(ppg_tool: Path) -> None:
    result = subprocess.run(
        [str(ppg_tool), "12"], input=np.zeros(100, "<f4").tobytes(), capture_output=True
    )
    assert result.returncode == 1 and b"bad rate" in result.stderr


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
def test_c_builds_for_the_cortex_m4f_without_warnings(tmp_path: Path) -> None:
    dsp = firmware_dir() / "dsp"
    for source in sorted(dsp.glob("*.c")):
        command = ["arm-none-eabi-gcc", *GCC_FLAGS, "-mcpu=cortex-m4", "-mthumb"]
        command += ["-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-I", str(dsp), "-c", str(source)]
        command += ["-o", str(tmp_path / f"{source.stem}.o")]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
