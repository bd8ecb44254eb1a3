"""WindowAssembler: ring buffer edge cases (pure numpy, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.errors import WindowError
from edge_runtime.streaming import WindowAssembler, WindowSpec, normalise


def _spec(length: int = 4, stride: int = 2, channels: int = 2, rate: float = 10.0) -> WindowSpec:
    return WindowSpec(length, stride, (0.0,) * channels, (1.0,) * channels, rate)


def _ramp(n: int, channels: int = 2, start: int = 0) -> np.ndarray:
    """Sample i has value start + i on every channel, so windows are easy to read."""
    return np.repeat(np.arange(start, start + n, dtype=np.float32)[:, None], channels, axis=1)


def test_no_window_before_length_samples() -> None:
    assembler = WindowAssembler(_spec())
    assert assembler.push(_ramp(3), timestamp=0.0) == []


def test_windows_follow_stride_in_one_big_chunk() -> None:
    # Prepare
    assembler = WindowAssembler(_spec(length=4, stride=2))
    # Execute
    windows = assembler.push(_ramp(9), timestamp=0.0)
    # Assert
    assert [w.values[:, 0].tolist() for w in windows] == [
        [0, 1, 2, 3],
        [2, 3, 4, 5],
        [4, 5, 6, 7],
    ]


def test_chunking_does_not_change_windows() -> None:
    # Prepare
    samples = _ramp(23, channels=3)
    whole = WindowAssembler(_spec(length=5, stride=3, channels=3)).push(samples, 0.0)
    assembler = WindowAssembler(_spec(length=5, stride=3, channels=3))
    # Execute
    pieces = []
    start = 0
    for size in (1, 4, 2, 7, 1, 8):
        pieces += assembler.push(samples[start : start + size], timestamp=start / 10.0)
        start += size
    # Assert
    assert len(pieces) == len(whole) == 7
    for a, b in zip(pieces, whole, strict=True):
        np.testing.assert_array_equal(a.values, b.values)
        assert a.start_ts == pytest.approx(b.start_ts)
        assert a.end_ts == pytest.approx(b.end_ts)


def test_stride_larger_than_length_skips_samples() -> None:
    windows = WindowAssembler(_spec(length=2, stride=5)).push(_ramp(13), 0.0)
    assert [w.values[:, 0].tolist() for w in windows] == [[0, 1], [5, 6], [10, 11]]


def test_stride_one_emits_every_sample_after_the_first_window() -> None:
    windows = WindowAssembler(_spec(length=3, stride=1)).push(_ramp(6), 0.0)
    assert [w.values[0, 0] for w in windows] == [0, 1, 2, 3]


def test_timestamps_come_from_sample_rate() -> None:
    # Prepare
    assembler = WindowAssembler(_spec(length=4, stride=4, rate=50.0))
    # Execute
    (window,) = assembler.push(_ramp(4), timestamp=100.0)
    # Assert
    assert window.start_ts == pytest.approx(100.0)
    assert window.end_ts == pytest.approx(100.0 + 3 / 50.0)


def test_normalisation_uses_per_channel_mean_and_std() -> None:
    # Prepare
    spec = WindowSpec(2, 2, mean=(1.0, 10.0), std=(2.0, 5.0), sample_rate_hz=1.0)
    samples = np.array([[3.0, 20.0], [1.0, 0.0]], dtype=np.float32)
    # Execute
    (window,) = WindowAssembler(spec).push(samples, 0.0)
    # Assert
    np.testing.assert_allclose(window.values, [[1.0, 2.0], [0.0, -2.0]])
    np.testing.assert_allclose(normalise(samples, spec.mean, spec.std), window.values)
    assert window.values.dtype == np.float32


def test_single_sample_push_and_reset() -> None:
    assembler = WindowAssembler(_spec(length=2, stride=1))
    assert assembler.push(np.array([1.0, 1.0]), 0.0) == []
    assembler.reset()
    assert assembler.push(np.array([2.0, 2.0]), 0.1) == []
    (window,) = assembler.push(np.array([3.0, 3.0]), 0.2)
    assert window.values[:, 0].tolist() == [2.0, 3.0]


def test_gap_in_timestamps_restarts_the_buffer() -> None:
    # Prepare: 10 Hz, windows of 4; the second chunk arrives 2 s late
    assembler = WindowAssembler(_spec(length=4, stride=4), max_gap_s=0.5)
    # Execute
    first = assembler.push(_ramp(3), timestamp=0.0)
    late = assembler.push(_ramp(3, start=100), timestamp=2.3)
    on_time = assembler.push(_ramp(1, start=103), timestamp=2.6)
    # Assert: no window mixes samples from both sides of the gap
    assert first == [] and late == []
    assert [w.values[:, 0].tolist() for w in on_time] == [[100, 101, 102, 103]]
    assert assembler.gaps == 1


def test_without_max_gap_timestamps_are_not_checked() -> None:
    assembler = WindowAssembler(_spec(length=4, stride=4))
    assembler.push(_ramp(3), timestamp=0.0)
    (window,) = assembler.push(_ramp(1, start=3), timestamp=50.0)
    assert window.values[:, 0].tolist() == [0, 1, 2, 3]
    assert assembler.gaps == 0


def test_wrong_channel_count_and_nan_are_rejected() -> None:
    assembler = WindowAssembler(_spec(channels=2))
    with pytest.raises(WindowError, match="channels"):
        assembler.push(np.zeros((3, 3)), 0.0)
    with pytest.raises(WindowError, match="NaN"):
        assembler.push(np.array([[np.nan, 0.0]]), 0.0)


@pytest.mark.parametrize(
    "spec",
    [
        WindowSpec(0, 1, (0.0,), (1.0,), 1.0),
        WindowSpec(2, 0, (0.0,), (1.0,), 1.0),
        WindowSpec(2, 1, (0.0,), (0.0,), 1.0),
        WindowSpec(2, 1, (0.0, 0.0), (1.0,), 1.0),
        WindowSpec(2, 1, (0.0,), (1.0,), 0.0),
    ],
)
def test_invalid_specs_are_rejected(spec: WindowSpec) -> None:
    with pytest.raises(WindowError):
        WindowAssembler(spec)
