"""Where the emulated MCU's samples come from: a replayed window dataset or `hardware` sensors.

A source hands out consecutive samples (`read(n)`) at its `sample_rate_hz` and knows the label
of the sample it is at (what a wearer pressing the button would say). Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from firmware_bridge.errors import BridgeError


class SampleSource(Protocol):
    """Consecutive multi-channel samples and the label of the current one."""

    sample_rate_hz: float
    channels: tuple[str, ...]
    labels: tuple[str, ...]

    def read(self, num_samples: int) -> np.ndarray:
        """The next samples, float32 (num_samples, channels)."""

    def current_label(self) -> int | None:
        """Label index of the next sample, None when unknown."""

    def window_started(self) -> bool:
        """True once after a new labelled window began (a natural button press)."""

    def samples_to_boundary(self) -> int:
        """Samples left before the label may change (frames never straddle a boundary)."""


@dataclass(frozen=True)
class WindowDataset:
    """The arrays of a window-dataset .npz the emulator needs."""

    X: np.ndarray  # (windows, time, channels) float32
    y: np.ndarray  # (windows,)
    labels: tuple[str, ...]
    channels: tuple[str, ...]
    sample_rate_hz: float


def load_window_dataset(path: str | Path) -> WindowDataset:
    """Read a window-dataset .npz with plain numpy (no training import)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return WindowDataset(
                X=np.asarray(data["X"], dtype=np.float32),
                y=np.asarray(data["y"], dtype=np.int64),
                labels=tuple(str(label) for label in data["labels"]),
                channels=tuple(str(channel) for channel in data["channels"]),
                sample_rate_hz=float(data["sample_rate_hz"]),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise BridgeError(f"cannot read window dataset {path}: {exc}") from None


class ReplaySource:
    """Plays the windows of a dataset back to back, looping; labels follow the windows."""

    def __init__(self, dataset: WindowDataset, start_window: int = 0) -> None:
        if dataset.X.ndim != 3 or len(dataset.X) == 0:
            raise BridgeError("window dataset has no windows of shape (N, T, C)")
        self.dataset = dataset
        self.sample_rate_hz = dataset.sample_rate_hz
        self.channels, self.labels = dataset.channels, dataset.labels
        self.window = start_window % len(dataset.X)
        self._position = 0
        self._new_window = True

    def read(self, num_samples: int) -> np.ndarray:
        """The next samples, crossing window boundaries as needed."""
        parts, needed = [], num_samples
        while needed:
            current = self.dataset.X[self.window]
            take = min(needed, len(current) - self._position)
            parts.append(current[self._position : self._position + take])
            self._position += take
            needed -= take
            if self._position == len(current):
                self.window = (self.window + 1) % len(self.dataset.X)
                self._position, self._new_window = 0, True
        return np.concatenate(parts).astype(np.float32)

    def current_label(self) -> int | None:
        """Label of the window being replayed."""
        return int(self.dataset.y[self.window])

    def window_started(self) -> bool:
        """True once per window, before its first sample is read."""
        started, self._new_window = self._new_window, False
        return started

    def samples_to_boundary(self) -> int:
        """Samples left in the current window."""
        return int(self.dataset.X.shape[1]) - self._position


class ImuActivitySource:
    """The `hardware` IMU emulator cycling through activities every `segment_s` seconds."""

    def __init__(
        self, sample_rate_hz: float = 50.0, segment_s: float = 10.0, seed: int = 0
    ) -> None:
        from hardware.sensors.imu import ACTIVITIES, IMU_CHANNELS, EmulatedImu, random_imu_subject

        rng = np.random.default_rng(seed)
        self._imu = EmulatedImu(random_imu_subject(rng), ACTIVITIES[0], sample_rate_hz, seed)
        self.sample_rate_hz = sample_rate_hz
        self.channels, self.labels = tuple(IMU_CHANNELS), tuple(ACTIVITIES)
        self._segment = max(1, round(segment_s * sample_rate_hz))
        self._emitted = 0
        self._new_segment = True

    def read(self, num_samples: int) -> np.ndarray:
        """Next IMU samples; the activity changes at segment boundaries."""
        parts = []
        while num_samples:
            take = min(num_samples, self._segment - self._emitted % self._segment)
            parts.append(self._imu.read(take))
            self._emitted += take
            num_samples -= take
            if self._emitted % self._segment == 0:
                index = (self._emitted // self._segment) % len(self.labels)
                self._imu.set_activity(self.labels[index])
                self._new_segment = True
        return np.concatenate(parts).astype(np.float32)

    def current_label(self) -> int | None:
        """Index of the activity being performed."""
        return self.labels.index(self._imu.activity)

    def window_started(self) -> bool:
        """True once per activity segment."""
        started, self._new_segment = self._new_segment, False
        return started

    def samples_to_boundary(self) -> int:
        """Samples left in the current activity segment."""
        return self._segment - self._emitted % self._segment


class PpgStressSource:
    """A wrist PPG from the `hardware` cardiac and PPG emulators, alternating calm and stress.

    Each segment draws a heart rhythm for its condition (stress: faster heart, lower RMSSD,
    faster breathing) and renders its PPG once; samples then stream at the sensor's rate.
    """

    labels: tuple[str, ...] = ("baseline", "stress")
    channels: tuple[str, ...] = ("ppg",)

    def __init__(self, segment_s: float = 60.0, seed: int = 0) -> None:
        from hardware.sensors.ppg import PpgSensor

        self._sensor = PpgSensor()
        self.sample_rate_hz = self._sensor.sample_rate_hz
        self._segment_s = segment_s
        self._rng = np.random.default_rng(seed)
        self._segment_index = -1
        self._trace = np.zeros(0, dtype=np.float32)
        self._position = 0
        self._new_segment = True

    def _next_segment(self) -> None:
        from hardware.sensors.cardiac import HeartRhythm, beat_times
        from hardware.sensors.ppg import ppg_from_beats

        self._segment_index += 1
        stressed = self._segment_index % 2 == 1
        rhythm = HeartRhythm(
            mean_hr_bpm=float(self._rng.normal(95.0 if stressed else 68.0, 4.0)),
            rmssd_ms=20.0 if stressed else 45.0,
            breathing_per_min=18.0 if stressed else 13.0,
            lf_amplitude_ms=12.0 if stressed else 25.0,
        )
        beats = beat_times(rhythm, self._segment_s, self._rng)
        trace = ppg_from_beats(beats, self._segment_s, self._sensor, self._rng)
        self._trace, self._position, self._new_segment = trace.astype(np.float32), 0, True

    def read(self, num_samples: int) -> np.ndarray:
        """The next PPG samples, float32 (num_samples, 1)."""
        parts = []
        while num_samples:
            if self._position >= len(self._trace):
                self._next_segment()
            take = min(num_samples, len(self._trace) - self._position)
            parts.append(self._trace[self._position : self._position + take])
            self._position += take
            num_samples -= take
        return np.concatenate(parts)[:, np.newaxis]

    def current_label(self) -> int | None:
        """1 during a stress segment, 0 at baseline."""
        if self._position >= len(self._trace):
            return (self._segment_index + 1) % 2
        return self._segment_index % 2

    def window_started(self) -> bool:
        """True once per segment."""
        if self._position >= len(self._trace):
            self._next_segment()
        started, self._new_segment = self._new_segment, False
        return started

    def samples_to_boundary(self) -> int:
        """Samples left in the current segment."""
        if self._position >= len(self._trace):
            self._next_segment()
        return len(self._trace) - self._position
