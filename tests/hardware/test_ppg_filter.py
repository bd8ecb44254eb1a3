"""The numpy band-pass equals scipy's Butterworth + sosfiltfilt, which NeuroKit2 uses."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.sensors.ppg_filter import butterworth_band_pass, zero_phase_filter

signal = pytest.importorskip("scipy.signal", reason="scipy is the workstation reference")


@pytest.mark.parametrize("rate_hz", [25.0, 64.0, 100.0, 116.99555, 250.0])
@pytest.mark.parametrize("order", [2, 3])
def test_band_pass_matches_scipy_response_and_output(rate_hz: float, order: int) -> None:
    # Prepare
    ours = butterworth_band_pass(rate_hz, order=order)
    theirs = signal.butter(order, [0.5, 8.0], btype="band", fs=rate_hz, output="sos")
    x = np.random.default_rng(int(rate_hz)).normal(size=3000).cumsum()
    # Execute
    _, ours_response = signal.sosfreqz(ours.sos, worN=1024, fs=rate_hz)
    _, their_response = signal.sosfreqz(theirs, worN=1024, fs=rate_hz)
    filtered = zero_phase_filter(ours, x)
    # Assert
    assert np.abs(ours_response - their_response).max() < 1e-9
    expected = signal.sosfiltfilt(theirs, x)
    assert np.abs(filtered - expected).max() < 1e-9 * np.abs(expected).max()


def test_band_edges_outside_nyquist_are_refused() -> None:
    with pytest.raises(ValueError, match="band"):
        butterworth_band_pass(12.0)


def test_too_short_signal_is_refused() -> None:
    with pytest.raises(ValueError, match="too short"):
        zero_phase_filter(butterworth_band_pass(64.0), np.zeros(15))
