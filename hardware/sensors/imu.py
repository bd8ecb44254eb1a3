"""Emulated 6-axis IMU (accelerometer in g, gyroscope in rad/s) for six daily activities.

Pure numpy so an emulated microcontroller can stream it. A signal is a function of time plus
noise: walking-type activities are a gait oscillation at the subject's step frequency, static
postures are gravity seen through a tilted body plus sway. Each subject has their own step
frequency, amplitude, sensor mounting rotation, noise and gyro bias, which is what makes a
federated partition of subjects non-IID.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIVITIES = ("walking", "upstairs", "downstairs", "sitting", "standing", "lying")
IMU_CHANNELS = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")


@dataclass(frozen=True, eq=False)
class ImuSubject:
    """One wearer: how they move and how the sensor sits on them."""

    step_hz: float  # steps per second when walking on the flat
    amplitude_g: float  # vertical acceleration amplitude of a step
    mount_rotation: np.ndarray  # (3, 3) body frame -> sensor frame
    acc_noise_g: float
    gyro_noise_rad_s: float
    gyro_bias_rad_s: np.ndarray  # (3,)
    sitting_lean_rad: float  # how far back this person leans when seated


@dataclass(frozen=True)
class _Motion:
    """How an activity changes the gait (multipliers of the subject's own values) and posture."""

    step_scale: float
    amplitude_scale: float
    impact: float  # weight of the sharp second harmonic (heel strike)
    pitch_rad: float  # body tilt forward (+) or back (-)
    roll_rad: float
    sway_g: float  # slow postural sway of a static posture


_MOTIONS = {
    "walking": _Motion(1.0, 1.0, 0.30, 0.05, 0.0, 0.0),
    "upstairs": _Motion(0.80, 0.85, 0.15, 0.20, 0.0, 0.0),
    "downstairs": _Motion(1.12, 1.35, 0.60, -0.10, 0.0, 0.0),
    "sitting": _Motion(0.0, 0.0, 0.0, -0.35, 0.0, 0.010),
    "standing": _Motion(0.0, 0.0, 0.0, 0.0, 0.0, 0.015),
    "lying": _Motion(0.0, 0.0, 0.0, -1.50, 0.25, 0.004),
}


def rotation_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Z-Y-X rotation matrix from Euler angles in radians."""
    cr, sr, cp, sp, cy, sy = (
        np.cos(roll),
        np.sin(roll),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(yaw),
        np.sin(yaw),
    )
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    return np.asarray(rz @ ry @ rx)


def random_imu_subject(rng: np.random.Generator) -> ImuSubject:
    """Draw a wearer; ranges in docs/data.md (cadence 1.6-2.1 steps/s, mounting +-25 degrees)."""
    mount = rotation_matrix(*rng.uniform(-0.45, 0.45, size=3))
    return ImuSubject(
        step_hz=float(rng.uniform(1.6, 2.1)),
        amplitude_g=float(rng.uniform(0.25, 0.55)),
        mount_rotation=mount,
        acc_noise_g=float(rng.uniform(0.01, 0.04)),
        gyro_noise_rad_s=float(rng.uniform(0.01, 0.06)),
        gyro_bias_rad_s=rng.normal(0.0, 0.02, size=3),
        sitting_lean_rad=float(rng.uniform(-0.25, 0.25)),
    )


@dataclass(frozen=True)
class _Phases:
    """Random phases of one recording, so two recordings never look identical."""

    gait: float
    sway: tuple[float, float, float]
    tempo: float

    @staticmethod
    def draw(rng: np.random.Generator) -> _Phases:
        values = rng.uniform(0.0, 2.0 * np.pi, size=5)
        return _Phases(
            float(values[0]),
            (float(values[1]), float(values[2]), float(values[3])),
            float(values[4]),
        )


def _body_motion(activity: str, subject: ImuSubject, t: np.ndarray, phases: _Phases) -> np.ndarray:
    """Acceleration and angular rate in the body frame (x forward, y left, z up), noiseless."""
    motion = _MOTIONS[activity]
    acc = np.zeros((t.size, 3))
    gyr = np.zeros((t.size, 3))
    if motion.step_scale > 0:
        step_hz = subject.step_hz * motion.step_scale
        tempo = 1.0 + 0.03 * np.sin(2 * np.pi * t / 20.0 + phases.tempo)  # cadence drifts a few %
        phase = 2 * np.pi * step_hz * np.cumsum(tempo) * _dt(t) + phases.gait
        amp = subject.amplitude_g * motion.amplitude_scale
        acc[:, 2] = amp * (np.sin(phase) + motion.impact * np.sin(2 * phase + 0.6))
        acc[:, 0] = 0.6 * amp * np.sin(phase + 1.2)
        acc[:, 1] = 0.35 * amp * np.sin(0.5 * phase)  # side-to-side at stride frequency
        gyr[:, 0] = 0.5 * np.sin(0.5 * phase + 0.3) * amp / 0.4
        gyr[:, 1] = 1.2 * np.sin(phase + 0.8) * amp / 0.4
        gyr[:, 2] = 0.4 * np.sin(0.5 * phase + 1.7) * amp / 0.4
    else:
        for axis in range(3):
            sway_hz = 0.2 + 0.1 * axis
            acc[:, axis] = motion.sway_g * np.sin(2 * np.pi * sway_hz * t + phases.sway[axis])
            gyr[:, axis] = 4 * motion.sway_g * np.cos(2 * np.pi * sway_hz * t + phases.sway[axis])
    return np.concatenate([acc, gyr], axis=1)


def _dt(t: np.ndarray) -> float:
    return float(t[1] - t[0]) if t.size > 1 else 0.0


def _posture(activity: str, subject: ImuSubject) -> np.ndarray:
    motion = _MOTIONS[activity]
    lean = subject.sitting_lean_rad if activity == "sitting" else 0.0
    return rotation_matrix(motion.roll_rad, motion.pitch_rad + lean, 0.0)


def imu_signal(
    activity: str, subject: ImuSubject, t: np.ndarray, phases: _Phases | None = None
) -> np.ndarray:
    """Noiseless sensor-frame signal at times `t` (seconds): (samples, 6) acc g then gyro rad/s."""
    if activity not in _MOTIONS:
        raise ValueError(f"unknown activity {activity!r}; choose one of {ACTIVITIES}")
    phases = phases or _Phases(0.0, (0.0, 0.0, 0.0), 0.0)
    body = _body_motion(activity, subject, np.asarray(t, dtype=np.float64), phases)
    gravity_body = _posture(activity, subject).T @ np.array([0.0, 0.0, 1.0])
    to_sensor = subject.mount_rotation.T
    acc = (body[:, :3] + gravity_body) @ to_sensor.T
    gyr = body[:, 3:] @ to_sensor.T + subject.gyro_bias_rad_s
    return np.concatenate([acc, gyr], axis=1)


def generate_imu(
    activity: str,
    subject: ImuSubject,
    duration_s: float,
    sample_rate_hz: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """One recording with sensor noise: float32 (samples, 6)."""
    t = np.arange(round(duration_s * sample_rate_hz)) / sample_rate_hz
    clean = imu_signal(activity, subject, t, _Phases.draw(rng))
    noise = rng.normal(size=clean.shape)
    noise[:, :3] *= subject.acc_noise_g
    noise[:, 3:] *= subject.gyro_noise_rad_s
    return (clean + noise).astype(np.float32)


class EmulatedImu:
    """A streaming IMU: `read(n)` returns the next n samples, continuous across calls."""

    def __init__(
        self,
        subject: ImuSubject,
        activity: str = "walking",
        sample_rate_hz: float = 50.0,
        seed: int = 0,
    ) -> None:
        self.subject = subject
        self.sample_rate_hz = sample_rate_hz
        self._rng = np.random.default_rng(seed)
        self._phases = _Phases.draw(self._rng)
        self._next_sample = 0
        self.activity = activity
        self.set_activity(activity)

    def set_activity(self, activity: str) -> None:
        """Switch what the wearer is doing from the next sample on."""
        if activity not in _MOTIONS:
            raise ValueError(f"unknown activity {activity!r}; choose one of {ACTIVITIES}")
        self.activity = activity

    def read(self, num_samples: int) -> np.ndarray:
        """The next `num_samples` samples, float32 (num_samples, 6)."""
        index = np.arange(self._next_sample, self._next_sample + num_samples)
        self._next_sample += num_samples
        t = index / self.sample_rate_hz
        clean = _stream_signal(self.activity, self.subject, t, self._phases)
        noise = self._rng.normal(size=clean.shape)
        noise[:, :3] *= self.subject.acc_noise_g
        noise[:, 3:] *= self.subject.gyro_noise_rad_s
        return (clean + noise).astype(np.float32)


def _stream_signal(
    activity: str, subject: ImuSubject, t: np.ndarray, phases: _Phases
) -> np.ndarray:
    # Gait phase must not restart with each chunk: use absolute time without the cadence drift.
    steady = _Phases(phases.gait, phases.sway, phases.tempo)
    if _MOTIONS[activity].step_scale > 0 and t.size:
        offset = 2 * np.pi * subject.step_hz * _MOTIONS[activity].step_scale * t[0]
        steady = _Phases(phases.gait + offset, phases.sway, phases.tempo)
        return imu_signal(activity, subject, t - t[0], steady)
    return imu_signal(activity, subject, t, steady)
