"""Adaptive clipping (Andrew et al. 2021): the clip follows the quantile, the bits are paid for."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aggregator.adaptive_clipping import (
    AdaptiveClipConfig,
    next_clip_norm,
    unclipped_bit,
    update_noise_multiplier,
)
from aggregator.privacy_accountant import PrivacyAccountant
from aggregator.strategies.dp_fedavg import DpFedAvg
from fleet_protocol.differential_privacy import DpConfig, PrivacyConfigError

HEAD = [np.zeros((3, 2), np.float32), np.zeros(2, np.float32)]


def _delta(norm: float) -> list[np.ndarray]:
    flat = np.full(8, norm / math.sqrt(8), np.float32)
    return [flat[:6].reshape(3, 2), flat[6:]]


def test_update_and_bit_noise_compose_to_the_announced_multiplier() -> None:
    # Execute
    z_delta = update_noise_multiplier(2.0, 2.0)

    # Assert: z^-2 = z_delta^-2 + (2 sigma_b)^-2
    assert z_delta**-2 + 4.0**-2 == pytest.approx(2.0**-2)
    assert z_delta > 2.0
    with pytest.raises(PrivacyConfigError, match="2 \\* sigma_b > z"):
        update_noise_multiplier(2.0, 1.0)


def test_the_clip_shrinks_when_every_norm_is_below_it_and_grows_when_every_one_is_above() -> None:
    # Prepare
    config = AdaptiveClipConfig(target_quantile=0.5, learning_rate=0.2, bit_noise_std=1e-9)
    rng = np.random.default_rng(0)
    below = sum(unclipped_bit(0.1, 1.0) for _ in range(10))
    above = sum(unclipped_bit(3.0, 1.0) for _ in range(10))

    # Execute
    shrunk = next_clip_norm(1.0, below, 10.0, config, rng)
    grown = next_clip_norm(1.0, above, 10.0, config, rng)

    # Assert: exp(-0.2 * (1 - 0.5)) and exp(-0.2 * (0 - 0.5))
    assert shrunk == pytest.approx(math.exp(-0.1))
    assert grown == pytest.approx(math.exp(0.1))


def test_dp_fedavg_adapts_its_clip_towards_the_norms_and_keeps_it_across_a_restart() -> None:
    # Prepare: every update has norm 0.2, the clip starts at 1.0
    config = DpConfig(noise_multiplier=1.0, clip_norm=1.0)
    adaptive = AdaptiveClipConfig(0.5, 0.2, bit_noise_std=1.0)
    strategy = DpFedAvg(config, rng=np.random.default_rng(1), adaptive=adaptive)

    # Execute
    for _ in range(15):
        strategy.begin_round(HEAD)
        for device in range(20):
            strategy.accumulate(_delta(0.2), 10, f"d{device}")
        strategy.finish_round(HEAD)
    restarted = DpFedAvg(config, adaptive=adaptive)
    restarted.state_from_arrays(strategy.state_to_arrays())

    # Assert
    assert strategy.clip_norm < 0.6
    assert restarted.clip_norm == strategy.clip_norm
    assert strategy.update_noise_multiplier > 1.0
    assert strategy.round_report()["dp_clip_norm"] == pytest.approx(strategy.clip_norm, abs=1e-6)


def test_with_sampling_the_mean_divides_by_the_expected_count() -> None:
    # Prepare: noise 0 shows the divisor alone; 2 updates came, 4 were expected
    strategy = DpFedAvg(DpConfig(noise_multiplier=0.0, clip_norm=10.0), expected_count=4.0)
    strategy.begin_round(HEAD)
    strategy.accumulate(_delta(1.0), 5, "a")
    strategy.accumulate(_delta(1.0), 50, "b")

    # Execute
    new = strategy.finish_round(HEAD)

    # Assert
    assert np.concatenate([w.ravel() for w in new]) == pytest.approx(
        np.full(8, 0.5 / math.sqrt(8)), abs=1e-6
    )


def test_sampling_amplifies_the_accounted_epsilon() -> None:
    full = PrivacyAccountant(DpConfig(1.0, 1.0)).epsilon(20)
    sampled = PrivacyAccountant(DpConfig(1.0, 1.0, sampling_probability=0.25)).epsilon(20)
    assert sampled < full / 2
