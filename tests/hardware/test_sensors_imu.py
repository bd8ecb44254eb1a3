"""Emulated IMU: physically sensible, deterministic, and streamable chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.sensors.imu import (
    ACTIVITIES,
    EmulatedImu,
    generate_imu,
    random_imu_subject,
    rotation_matrix,
)


@pytest.fixture
def wearer():
    return random_imu_subject(np.random.default_rng(1))


def test_gravity_is_one_g_when_still(wearer):
    for activity in ("sitting", "standing", "lying"):
        signal = generate_imu(activity, wearer, 10.0, 50.0, np.random.default_rng(0))
        assert np.linalg.norm(signal[:, :3].mean(axis=0)) == pytest.approx(1.0, abs=0.03)


def test_walking_oscillates_at_the_step_frequency(wearer):
    signal = generate_imu("walking", wearer, 40.0, 50.0, np.random.default_rng(0))
    magnitude = np.linalg.norm(signal[:, :3], axis=1)
    spectrum = np.abs(np.fft.rfft(magnitude - magnitude.mean()))
    peak_hz = np.fft.rfftfreq(magnitude.size, 1 / 50.0)[spectrum.argmax()]
    assert peak_hz == pytest.approx(wearer.step_hz, rel=0.08)


def test_same_seed_same_signal_and_every_activity_known(wearer):
    for activity in ACTIVITIES:
        a = generate_imu(activity, wearer, 2.0, 50.0, np.random.default_rng(3))
        b = generate_imu(activity, wearer, 2.0, 50.0, np.random.default_rng(3))
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="unknown activity"):
        generate_imu("running", wearer, 1.0, 50.0, np.random.default_rng(0))


def test_rotation_matrix_is_orthonormal():
    r = rotation_matrix(0.3, -0.2, 1.1)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_stream_reads_are_continuous_and_float32(wearer):
    imu = EmulatedImu(wearer, "standing", seed=5)
    first, second = imu.read(50), imu.read(50)
    assert first.shape == (50, 6) and first.dtype == np.float32
    assert abs(float(second[0, 2] - first[-1, 2])) < 0.2
    imu.set_activity("walking")
    assert imu.read(100)[:, :3].std() > first[:, :3].std()
