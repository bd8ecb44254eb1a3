"""The PPG band-pass in numpy alone: a Butterworth designed in closed form, run forward-backward.

Why not scipy: scipy is not in the `edge` extra and has no 32-bit ARM wheel, and a device must
compute heart rate with exactly the arithmetic the workstation trained on. The design follows the
textbook route (analogue Butterworth prototype poles -> low-pass to band-pass -> bilinear
transform with pre-warped edges), which is what `scipy.signal.butter(order, [lo, hi], "band")`
does; the zero-phase filter pads with an odd reflection of `3 x (2 x sections + 1)` samples and
starts both passes from the steady state of the first sample, which is what
`scipy.signal.sosfiltfilt` does. Any factorisation into sections of the same transfer function
gives the same output from a steady-state start, so our sections need not be scipy's: the tests
compare outputs, not coefficients. The C firmware (`firmware_bridge/firmware/dsp/iomt_ppg.c`)
designs and runs the same filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PPG_BAND_HZ = (0.5, 8.0)  # Elgendi et al. 2013: the pulse and its first harmonics, no baseline
PPG_FILTER_ORDER = 2  # Elgendi et al. 2013 and NeuroKit2 >= 0.3: 2nd order, zero phase


@dataclass(frozen=True)
class SecondOrderSections:
    """A digital filter as a cascade of biquads; rows are b0 b1 b2 1 a1 a2 (scipy's `sos`)."""

    sos: np.ndarray  # (sections, 6) float64

    @property
    def num_sections(self) -> int:
        return int(self.sos.shape[0])


def butterworth_band_pass(
    sample_rate_hz: float, band_hz: tuple[float, float] = PPG_BAND_HZ, order: int = PPG_FILTER_ORDER
) -> SecondOrderSections:
    """Digital Butterworth band-pass of `order` (2 x order poles): one section per pole pair."""
    low, high = band_hz
    if not 0.0 < low < high < sample_rate_hz / 2.0:
        raise ValueError(f"band {band_hz} Hz must lie inside (0, {sample_rate_hz / 2.0}) Hz")
    poles = _band_pass_poles(sample_rate_hz, low, high, order)
    sections = _pair_poles(poles)
    gain = _unit_peak_gain(sample_rate_hz, low, high, sections)
    sections[0, :3] *= gain
    return SecondOrderSections(sections)


def _band_pass_poles(sample_rate_hz: float, low: float, high: float, order: int) -> np.ndarray:
    """z-plane poles: prototype poles -> band-pass (pre-warped edges) -> bilinear transform."""
    two_fs = 2.0 * sample_rate_hz
    warped_low = two_fs * np.tan(np.pi * low / sample_rate_hz)
    warped_high = two_fs * np.tan(np.pi * high / sample_rate_hz)
    bandwidth, centre = warped_high - warped_low, np.sqrt(warped_low * warped_high)
    k = np.arange(order)
    prototype = np.exp(1j * np.pi * (2 * k + order + 1) / (2 * order))  # left half-plane
    half = prototype * bandwidth / 2.0
    root = np.sqrt(half**2 - centre**2 + 0j)
    analogue = np.concatenate([half + root, half - root])
    return np.asarray((two_fs + analogue) / (two_fs - analogue))


def _pair_poles(poles: np.ndarray) -> np.ndarray:
    """One biquad per conjugate pair (or pair of real poles), each with zeros at z = +1 and -1."""
    upper = poles[poles.imag > 1e-12]
    real = np.sort(poles[np.abs(poles.imag) <= 1e-12].real)
    rows = [[1.0, 0.0, -1.0, 1.0, -2.0 * p.real, abs(p) ** 2] for p in upper]
    pairs = zip(real[::2], real[1::2], strict=True)
    rows += [[1.0, 0.0, -1.0, 1.0, -(a + b), a * b] for a, b in pairs]
    return np.asarray(rows, dtype=np.float64)


def _unit_peak_gain(sample_rate_hz: float, low: float, high: float, sections: np.ndarray) -> float:
    """Scale so the response is 1 at the band's (pre-warped) centre, as a Butterworth's is."""
    centre = np.sqrt(np.tan(np.pi * low / sample_rate_hz) * np.tan(np.pi * high / sample_rate_hz))
    z = np.exp(2j * np.arctan(centre))  # the bilinear image of the analogue centre frequency
    response = 1.0 + 0j
    for b0, b1, b2, _, a1, a2 in sections:
        response *= (b0 + b1 / z + b2 / z**2) / (1.0 + a1 / z + a2 / z**2)
    return float(1.0 / abs(response))


def zero_phase_filter(filt: SecondOrderSections, signal: np.ndarray) -> np.ndarray:
    """Forward-backward filtering with odd-reflection padding and steady-state starts."""
    x = np.asarray(signal, dtype=np.float64).ravel()
    pad = 3 * (2 * filt.num_sections + 1)
    if x.size <= pad:
        raise ValueError(f"signal of {x.size} samples is too short to filter (needs > {pad})")
    padded = np.concatenate([2 * x[0] - x[pad:0:-1], x, 2 * x[-1] - x[-2 : -pad - 2 : -1]])
    forward = _cascade(filt.sos, padded)
    backward = _cascade(filt.sos, forward[::-1])[::-1]
    return np.asarray(backward[pad:-pad])


def _cascade(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Run the sections in turn, each from the steady state of a constant input x[0]."""
    y = x
    for section in sos:
        y = _biquad(section, y)
    return y


def _biquad(section: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Transposed direct form II from the state a constant input x[0] would have settled to."""
    b0, b1, b2, _, a1, a2 = (float(c) for c in section)
    dc_gain = (b0 + b1 + b2) / (1.0 + a1 + a2)
    first = float(x[0])
    z1 = (b2 - a2 * dc_gain) * first
    z0 = (b1 - a1 * dc_gain) * first + z1
    out = np.empty(x.size)
    values = x.tolist()  # python floats: a scalar loop over a list is ~5x faster than over numpy
    for n, value in enumerate(values):
        y = b0 * value + z0
        z0 = b1 * value - a1 * y + z1
        z1 = b2 * value - a2 * y
        out[n] = y
    return out
