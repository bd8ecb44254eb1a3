"""Heart rate from real PPG (the HeartPy wheel's recordings) against HeartPy's own analysis.

Acceptance of issue 22: mean heart rate within 3 bpm of the reference on every recording. The
mean absolute error of the 4 Hz series is reported (`python -m bench ppg` writes it) and held
under a bound set a little above what was measured, so a regression shows.
"""

from __future__ import annotations

import pytest

from bench.ppg import evaluate_recording
from tests.hardware.ppg_recordings_fixture import real_recordings

pytestmark = pytest.mark.slow

# measured 0.17, 0.20 and 1.46 bpm (docs/data.md); the bound leaves room for platform rounding
MAX_SERIES_MAE_BPM = {"data.csv": 1.0, "data2.csv": 1.0, "data3.csv": 2.5}


def test_recordings_are_the_pinned_files_at_their_documented_rates() -> None:
    rates = {r.name: round(r.sample_rate_hz, 2) for r in real_recordings()}
    assert rates == {"data.csv": 100.0, "data2.csv": 117.0, "data3.csv": 100.42}


def test_mean_heart_rate_within_3_bpm_of_reference_on_every_recording() -> None:
    for recording in real_recordings():
        # Execute
        figures = evaluate_recording(recording)
        print(
            f"{figures.name}: {figures.mean_hr_bpm:.2f} vs {figures.reference_mean_hr_bpm:.2f} bpm,"
            f" series MAE {figures.hr_mae_bpm:.2f} bpm, untrusted {figures.untrusted_share:.1%}"
        )
        # Assert
        assert abs(figures.mean_hr_error_bpm) < 3.0, figures
        assert figures.hr_mae_bpm < MAX_SERIES_MAE_BPM[figures.name], figures
        assert figures.compared_share > 0.3, figures  # compared on a real share of the time
        assert figures.untrusted_share < 0.7, figures
