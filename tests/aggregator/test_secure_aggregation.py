"""Secure aggregation: exact sums with and without dropouts, and masked inputs that look random."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from aggregator.secure_aggregation.in_memory import run_round
from fleet_protocol.secure_aggregation.client import SecAggClient
from fleet_protocol.secure_aggregation.errors import SecureAggregationError
from fleet_protocol.secure_aggregation.fixed_point import FixedPoint, flatten
from fleet_protocol.secure_aggregation.messages import EncryptedShare, SecAggConfig, UnmaskRequest
from fleet_protocol.secure_aggregation.shamir import combine_shares, split_secret

SHAPES = [(8, 8), (8,), (8, 3), (3,)]
LENGTH = sum(int(np.prod(s)) for s in SHAPES) + 1  # + the weight
NUM_DEVICES = 10
THRESHOLD = 6


def _updates(seed: int = 0) -> dict[str, tuple[list[np.ndarray], int]]:
    rng = np.random.default_rng(seed)
    return {
        f"dev-{i:02d}": (
            [rng.normal(0, 0.05, shape).astype(np.float32) for shape in SHAPES],
            int(rng.integers(20, 400)),
        )
        for i in range(NUM_DEVICES)
    }


def _config(length: int = LENGTH) -> SecAggConfig:
    return SecAggConfig(threshold=THRESHOLD, vector_length=length, context=b"test/1")


def _plain_weighted_sum(updates: dict[str, tuple[list[np.ndarray], int]], devices: list[str],
                        unit: float) -> np.ndarray:  # fmt: skip
    rows = [np.append(flatten(updates[d][0]) * (updates[d][1] / unit), updates[d][1] / unit)
            for d in devices]  # fmt: skip
    return np.sum(rows, axis=0)


def test_shamir_any_threshold_subset_rebuilds_the_secret() -> None:
    secret = bytes(range(32))
    shares = split_secret(secret, 7, 4)
    assert combine_shares(shares[3:], 4) == secret
    assert combine_shares([shares[0], shares[2], shares[4], shares[6]], 4) == secret
    with pytest.raises(SecureAggregationError):
        combine_shares(shares[:3], 4)


def test_fixed_point_round_trip_within_half_a_step() -> None:
    fixed = FixedPoint(16)
    values = np.random.default_rng(1).uniform(-1000, 1000, 5000)
    assert np.max(np.abs(fixed.decode(fixed.encode(values)) - values)) <= fixed.step / 2
    with pytest.raises(SecureAggregationError):
        fixed.encode(np.array([fixed.limit * 2]))


@pytest.mark.parametrize("dropped", [[], ["dev-01", "dev-04", "dev-07"]], ids=["0%", "30%"])
def test_masked_sum_equals_the_plain_weighted_sum(dropped: list[str]) -> None:
    updates, config = _updates(), _config()
    outcome = run_round(updates, config, drop_before_input=dropped)
    survivors = [d for d in sorted(updates) if d not in dropped]
    expected = _plain_weighted_sum(updates, survivors, config.example_unit)
    # each survivor rounds each value once: at most half a step each
    tolerance = len(survivors) * config.fixed_point.step / 2 + 1e-9
    assert np.max(np.abs(outcome.weighted_sum - expected)) <= tolerance
    assert outcome.survivors == tuple(survivors) and outcome.dropped == tuple(dropped)
    examples = sum(updates[d][1] for d in survivors)
    mean = [sum(updates[d][0][i] * updates[d][1] for d in survivors) / examples
            for i in range(len(SHAPES))]  # fmt: skip
    for got, want in zip(outcome.mean_delta, mean, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_devices_that_never_answer_the_unmask_phase_do_not_matter() -> None:
    updates, config = _updates(2), _config()
    silent = ["dev-02", "dev-05", "dev-08"]
    outcome = run_round(updates, config, drop_at_unmask=silent)
    expected = _plain_weighted_sum(updates, sorted(updates), config.example_unit)
    assert np.max(np.abs(outcome.weighted_sum - expected)) <= NUM_DEVICES * 2**-17 + 1e-9


def test_too_many_dropouts_stop_the_round() -> None:
    dropped = [f"dev-{i:02d}" for i in range(5)]
    with pytest.raises(SecureAggregationError, match="threshold"):
        run_round(_updates(), _config(), drop_before_input=dropped)


def _two_clients() -> tuple[SecAggClient, SecAggClient, list[EncryptedShare]]:
    config = SecAggConfig(threshold=2, vector_length=4, context=b"t/1")
    a, b = SecAggClient("a", config), SecAggClient("b", config)
    ads = [a.advertise(), b.advertise()]
    return a, b, a.share_keys(ads) + b.share_keys(ads)


def test_a_device_never_reveals_both_masks_of_the_same_device() -> None:
    a, _, sealed = _two_clients()
    a.masked_input(np.zeros(4, np.uint32), [s for s in sealed if s.receiver == "a"])
    with pytest.raises(SecureAggregationError, match="inconsistent"):
        a.unmask(UnmaskRequest(survivors=("a", "b"), dropped=("b",)))


def test_a_tampered_share_is_refused() -> None:
    a, _, sealed = _two_clients()
    for_a = [s for s in sealed if s.receiver == "a"]
    # Flip a bit: writing 0 over the last byte changed nothing when it was 0 already (1 in 256)
    ciphertext = for_a[1].ciphertext
    broken = EncryptedShare(for_a[1].sender, "a", ciphertext[:-1] + bytes([ciphertext[-1] ^ 1]))
    with pytest.raises(SecureAggregationError, match="decrypt"):
        a.masked_input(np.zeros(4, np.uint32), [for_a[0], broken])


def test_a_single_masked_update_is_uniform_and_independent_of_the_update() -> None:
    # Prepare: a large, structured update (a ramp) so any leak would show
    length = 20_000
    ramp = np.linspace(-1000.0, 1000.0, length - 1)
    zeros = np.zeros(length - 1)
    updates = {f"dev-{i}": ([ramp if i == 0 else zeros], 100) for i in range(4)}
    config = SecAggConfig(threshold=3, vector_length=length, context=b"stat/1")

    # Execute
    outcome = run_round(updates, config)
    masked = outcome.masked_inputs["dev-0"].values.astype(np.float64)
    other = outcome.masked_inputs["dev-1"].values.astype(np.float64)

    # Assert: uniform on [0, 2^32) (KS and chi-square), uncorrelated with the update,
    # and distributed like the masked all-zeros update of another device
    uniform = masked / 2**32
    assert stats.kstest(uniform, "uniform").pvalue > 1e-4
    counts, _ = np.histogram(uniform, bins=64, range=(0.0, 1.0))
    assert stats.chisquare(counts).pvalue > 1e-4
    assert abs(stats.pearsonr(ramp, masked[:-1]).statistic) < 4 / np.sqrt(length)
    assert abs(stats.spearmanr(ramp, masked[:-1]).statistic) < 4 / np.sqrt(length)
    assert stats.ks_2samp(masked, other).pvalue > 1e-4
