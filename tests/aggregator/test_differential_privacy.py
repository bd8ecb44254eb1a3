"""Differential privacy: clipping, noise scale, the DP-FedAvg strategy and the accountant."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.privacy_accountant import PrivacyAccountant
from aggregator.strategies.dp_fedavg import DpFedAvg
from fleet_protocol.differential_privacy import (
    DpConfig,
    PrivacyConfigError,
    clip_update,
    gaussian_epsilon,
    global_norm,
    noisy_mean_step,
    privatize_on_device,
)

SHAPES = [(16, 8), (8,), (8, 3), (3,)]


def _delta(rng: np.random.Generator, scale: float) -> list[np.ndarray]:
    return [rng.normal(0, scale, shape).astype(np.float32) for shape in SHAPES]


@pytest.mark.parametrize("scale", [0.001, 0.1, 10.0])
def test_clipping_bounds_the_global_norm_and_keeps_small_updates(scale: float) -> None:
    delta = _delta(np.random.default_rng(0), scale)
    clipped = clip_update(delta, clip_norm=1.0)
    assert global_norm(clipped) <= 1.0 + 1e-6
    if global_norm(delta) <= 1.0:
        for a, b in zip(clipped, delta, strict=True):
            np.testing.assert_array_equal(a, b)
    else:  # direction kept
        ratio = clipped[0] / delta[0]
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-5)


def test_noise_standard_deviation_matches_z_times_c_over_count() -> None:
    config = DpConfig(noise_multiplier=1.5, clip_norm=0.5)
    zeros = [np.zeros((200, 100), np.float32)]
    step = noisy_mean_step(zeros, count=4, config=config, rng=np.random.default_rng(1))
    expected = 1.5 * 0.5 / 4
    assert abs(float(np.std(step[0])) - expected) < 0.02 * expected  # 20,000 samples
    assert abs(float(np.mean(step[0]))) < 0.05 * expected


def test_on_device_noise_is_z_times_c() -> None:
    config = DpConfig(noise_multiplier=2.0, clip_norm=0.1)
    noisy = privatize_on_device(
        [np.zeros((300, 100), np.float32)], config, np.random.default_rng(2)
    )
    assert abs(float(np.std(noisy[0])) - 0.2) < 0.02 * 0.2


def test_dp_fedavg_is_the_clipped_unweighted_mean_plus_noise() -> None:
    rng = np.random.default_rng(3)
    deltas = [_delta(rng, 1.0) for _ in range(3)]
    zero_noise = DpFedAvg(DpConfig(noise_multiplier=0.0, clip_norm=0.5))
    globals_ = [np.zeros(shape, np.float32) for shape in SHAPES]
    zero_noise.begin_round(globals_)
    for i, delta in enumerate(deltas):
        zero_noise.accumulate(delta, num_examples=10 * (i + 1), device_id=f"d{i}")
    new = zero_noise.finish_round(globals_)
    expected = [np.mean([clip_update(d, 0.5)[t] for d in deltas], axis=0) for t in range(4)]
    for got, want in zip(new, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert zero_noise.clipped == 3 and zero_noise.accountant.rounds == 1


def test_dp_fedavg_state_survives_a_restart() -> None:
    rng = np.random.default_rng(4)
    config = DpConfig(noise_multiplier=0.0, clip_norm=0.5)
    globals_ = [np.zeros(shape, np.float32) for shape in SHAPES]
    first, second = DpFedAvg(config), DpFedAvg(config)
    first.begin_round(globals_)
    first.accumulate(_delta(rng, 1.0), 5, "a")
    second.begin_round(globals_)
    second.state_from_arrays(first.state_to_arrays())
    later = _delta(rng, 1.0)
    first.accumulate(later, 5, "b")
    second.accumulate(later, 5, "b")
    for a, b in zip(first.finish_round(globals_), second.finish_round(globals_), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-7)


@pytest.mark.parametrize("kind", ["rdp", "pld"])
def test_epsilon_grows_with_rounds_and_shrinks_with_noise(kind: str) -> None:
    def epsilon(z: float, rounds: int) -> float:
        return PrivacyAccountant(DpConfig(z, 1.0, 1e-5, accountant=kind)).epsilon(rounds)

    assert 0 < epsilon(1.0, 1) < epsilon(1.0, 10) < epsilon(1.0, 50)
    assert epsilon(0.7, 10) > epsilon(1.0, 10) > epsilon(2.0, 10) > epsilon(4.0, 10)
    sampled = PrivacyAccountant(DpConfig(1.0, 1.0, 1e-5, sampling_probability=0.1, accountant=kind))
    assert sampled.epsilon(10) < epsilon(1.0, 10)  # amplification by sub-sampling


@pytest.mark.parametrize(("z", "rounds"), [(0.8, 1), (1.0, 20), (2.0, 50), (5.0, 200)])
def test_device_epsilon_equals_the_pld_accountant(z: float, rounds: int) -> None:
    # Prepare
    accountant = PrivacyAccountant(DpConfig(z, 1.0, 1e-5, accountant="pld"))

    # Execute
    exact = gaussian_epsilon(z, rounds, 1e-5)

    # Assert: PLD is a tight upper bound with its discretisation error (1e-3 per step)
    assert exact <= accountant.epsilon(rounds) <= exact * 1.01 + 1e-2


def test_device_epsilon_edge_cases() -> None:
    assert gaussian_epsilon(1.0, 0, 1e-5) == 0.0
    assert gaussian_epsilon(0.0, 3, 1e-5) == float("inf")
    assert gaussian_epsilon(1.0, 10, 1e-5) < gaussian_epsilon(1.0, 11, 1e-5)


def test_budget_policy_stops_or_warns_before_overspending() -> None:
    stop = PrivacyAccountant(DpConfig(1.0, 1.0, 1e-5, epsilon_budget=10.0))
    decisions = []
    while (decision := stop.decide_next_round()) == "continue":
        decisions.append(stop.step())
    assert decision == "stop" and decisions and decisions[-1] <= 10.0
    assert stop.epsilon(stop.rounds + 1) > 10.0
    warn = PrivacyAccountant(DpConfig(1.0, 1.0, 1e-5, epsilon_budget=1.0, on_budget="warn"))
    assert warn.decide_next_round() == "warn"


def test_bad_settings_are_refused() -> None:
    with pytest.raises(PrivacyConfigError):
        DpConfig(noise_multiplier=1.0, clip_norm=0.0)
    with pytest.raises(PrivacyConfigError):
        DpConfig(noise_multiplier=1.0, clip_norm=1.0, delta=2.0)
