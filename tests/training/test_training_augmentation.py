import numpy as np

from training.augmentation import AugmentationConfig, augment_windows, random_rotations

IMU = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")


def test_rotations_are_orthonormal() -> None:
    rotations = random_rotations(20, 0.5, np.random.default_rng(0))
    identity = np.einsum("nij,nkj->nik", rotations, rotations)
    assert np.allclose(identity, np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(rotations), 1.0)


def test_rotation_only_preserves_vector_norms() -> None:
    rng = np.random.default_rng(1)
    windows = rng.normal(size=(4, 16, 6)).astype(np.float32)
    only_rotation = AugmentationConfig(
        rotation_std_rad=0.5, scale_range=0, noise_std=0, max_shift_fraction=0, mirror_probability=0
    )
    out = augment_windows(windows, only_rotation, rng, IMU)
    for start in (0, 3):
        before = np.linalg.norm(windows[:, :, start : start + 3], axis=2)
        after = np.linalg.norm(out[:, :, start : start + 3], axis=2)
        assert np.allclose(before, after, atol=1e-4)
    assert not np.allclose(out, windows)


def test_mirror_flips_accelerometer_x_and_gyroscope_y_z() -> None:
    windows = np.ones((1, 4, 6), dtype=np.float32)
    only_mirror = AugmentationConfig(
        rotation_std_rad=0, scale_range=0, noise_std=0, max_shift_fraction=0, mirror_probability=1.0
    )
    out = augment_windows(windows, only_mirror, np.random.default_rng(0), IMU)
    assert out[0, 0].tolist() == [-1, 1, 1, 1, -1, -1]


def test_augmentation_keeps_shape_and_input_untouched() -> None:
    rng = np.random.default_rng(2)
    windows = rng.normal(size=(3, 32, 2)).astype(np.float32)
    copy = windows.copy()
    out = augment_windows(windows, AugmentationConfig(), rng, ("a", "b"))
    assert out.shape == windows.shape
    assert np.array_equal(windows, copy)
