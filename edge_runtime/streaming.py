"""Sample stream -> normalised fixed-length windows, with a ring buffer (pure, numpy).

Sources (serial frames, a replayed .npz, an emulated sensor) push chunks of samples of any
size; the assembler emits a `Window` each time `stride` new samples complete one of
`length` samples. Normalisation is the manifest's per-channel mean/std.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from edge_runtime.errors import WindowError


@dataclass(frozen=True)
class WindowSpec:
    """What the manifest says about windows: length T, stride S, normalisation, sample rate."""

    length: int
    stride: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    sample_rate_hz: float

    @property
    def num_channels(self) -> int:
        return len(self.mean)


@dataclass(frozen=True)
class Window:
    """One normalised window [T, C] and the timestamps of its first and last sample."""

    values: NDArray[np.float32]
    start_ts: float
    end_ts: float


class WindowAssembler:
    """Ring buffer of the last `length` samples; emits a window every `stride` samples.

    With `max_gap_s`, a chunk whose timestamp is more than `max_gap_s` away from where the
    stream should be (dropped serial frames, a paused sensor) restarts the buffer, so no
    window spans the gap; `gaps` counts those restarts.
    """

    def __init__(self, spec: WindowSpec, max_gap_s: float | None = None) -> None:
        _check_spec(spec)
        self.spec = spec
        self.max_gap_s = max_gap_s
        self.gaps = 0
        self._next_ts: float | None = None
        self._mean = np.asarray(spec.mean, dtype=np.float32)
        self._std = np.asarray(spec.std, dtype=np.float32)
        self._buffer = np.zeros((spec.length, spec.num_channels), dtype=np.float32)
        self._times = np.zeros(spec.length, dtype=np.float64)
        self._write = 0  # next slot in the ring
        self._filled = 0  # samples held, at most length
        self._since_last = 0  # samples pushed since the last emitted window
        self._emitted_any = False

    def reset(self) -> None:
        """Forget buffered samples (after a gap in the stream)."""
        self._write = self._filled = self._since_last = 0
        self._emitted_any = False
        self._next_ts = None

    def push(self, samples: NDArray[np.floating], timestamp: float) -> list[Window]:
        """Add samples [n, C] whose first sample was taken at `timestamp` (seconds)."""
        chunk = np.asarray(samples, dtype=np.float32)
        if chunk.ndim == 1:
            chunk = chunk[None, :]
        if chunk.ndim != 2 or chunk.shape[1] != self.spec.num_channels:
            raise WindowError(
                f"samples shape {chunk.shape} does not have {self.spec.num_channels} channels"
            )
        if not np.all(np.isfinite(chunk)):
            raise WindowError("samples contain NaN or infinity")
        period = 1.0 / self.spec.sample_rate_hz
        if self._is_gap(timestamp):
            self.gaps += 1
            self.reset()
        self._next_ts = timestamp + len(chunk) * period
        windows = []
        for i, sample in enumerate(chunk):
            window = self._push_one(sample, timestamp + i * period)
            if window is not None:
                windows.append(window)
        return windows

    def _is_gap(self, timestamp: float) -> bool:
        if self.max_gap_s is None or self._next_ts is None:
            return False
        return abs(timestamp - self._next_ts) > self.max_gap_s

    def _push_one(self, sample: NDArray[np.float32], ts: float) -> Window | None:
        length = self.spec.length
        self._buffer[self._write] = sample
        self._times[self._write] = ts
        self._write = (self._write + 1) % length
        self._filled = min(self._filled + 1, length)
        self._since_last += 1
        if self._filled < length:
            return None
        if self._emitted_any and self._since_last < self.spec.stride:
            return None
        self._emitted_any = True
        self._since_last = 0
        return self._emit()

    def _emit(self) -> Window:
        order = np.roll(np.arange(self.spec.length), -self._write)  # oldest first
        values = (self._buffer[order] - self._mean) / self._std
        times = self._times[order]
        return Window(values.astype(np.float32), float(times[0]), float(times[-1]))


def normalise(
    window: NDArray[np.floating], mean: Sequence[float], std: Sequence[float]
) -> NDArray[np.float32]:
    """Per-channel (x - mean) / std for one window or a batch."""
    shift = np.asarray(mean, dtype=np.float32)
    scale = np.asarray(std, dtype=np.float32)
    result: NDArray[np.float32] = (np.asarray(window, dtype=np.float32) - shift) / scale
    return result


def _check_spec(spec: WindowSpec) -> None:
    if spec.length < 1 or spec.stride < 1:
        raise WindowError(f"window length {spec.length} and stride {spec.stride} must be >= 1")
    if len(spec.std) != len(spec.mean) or not spec.mean:
        raise WindowError(f"normalisation has {len(spec.mean)} means and {len(spec.std)} stds")
    if any(s <= 0 or not np.isfinite(s) for s in spec.std):
        raise WindowError("normalisation std must be positive and finite")
    if spec.sample_rate_hz <= 0:
        raise WindowError(f"sample rate {spec.sample_rate_hz} must be positive")
