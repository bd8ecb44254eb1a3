"""Poisson sampling from the announced seed: independent, at the rate, the same on both sides."""

from __future__ import annotations

from fleet_protocol.device_sampling import is_sampled, sampling_draw


def test_rate_one_takes_every_device() -> None:
    assert all(is_sampled("seed", 3, f"d{i}", 1.0) for i in range(100))


def test_the_draw_is_a_function_of_seed_round_and_device() -> None:
    # Prepare / Execute
    first = sampling_draw("seed", 3, "dev-1")
    again = sampling_draw("seed", 3, "dev-1")
    others = {sampling_draw("seed", 4, "dev-1"), sampling_draw("other", 3, "dev-1"),
              sampling_draw("seed", 3, "dev-2")}  # fmt: skip

    # Assert
    assert first == again and 0.0 <= first < 1.0
    assert first not in others


def test_about_a_quarter_of_a_large_fleet_is_drawn_at_rate_a_quarter() -> None:
    # Prepare
    devices = [f"dev-{i}" for i in range(4000)]

    # Execute
    drawn = [d for d in devices if is_sampled("3f9a", 7, d, 0.25)]
    next_round = {d for d in devices if is_sampled("3f9a", 8, d, 0.25)}

    # Assert: binomial(4000, 0.25) has std 27; the rounds draw (almost) independent samples
    assert abs(len(drawn) - 1000) < 120
    assert abs(len(next_round & set(drawn)) - 250) < 60
