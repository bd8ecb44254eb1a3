"""The coordinator's book of partial sums: newest per signer, disjoint, same head as one FedAvg."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.partial_sums import PartialSumBook, devices_to_drop, fold_into, owner_of
from aggregator.strategies import make_strategy
from aggregator.strategies.base import StreamingStrategy
from aggregator.strategies.dp_fedavg import DpFedAvg
from fleet_protocol.differential_privacy import DpConfig
from fleet_protocol.errors import AggregationError, DuplicateUpdateError
from fleet_protocol.partial_sum import PartialSum

SHAPES = [(3, 2), (2,)]


def gen_delta(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype(np.float32) for s in SHAPES]


def gen_partial(signer: str, devices: dict[str, int], sequence: int = 1,
                round_id: int = 4) -> PartialSum:  # fmt: skip
    """The partial sum a signer makes of devices (id -> examples), delta seeded by the id."""
    total = np.zeros(8)
    for device, n in devices.items():
        flat = np.concatenate([t.ravel() for t in gen_delta(int(device.split("-")[1]))])
        total += flat.astype(np.float64) * n
    return PartialSum("ward-7", round_id, 3, signer, sequence, total, sum(devices.values()),
                      tuple(sorted(devices)), tuple(SHAPES))  # fmt: skip


def test_two_workers_sums_give_the_single_aggregators_head_to_1e_12() -> None:
    # Prepare: the same six updates, once into one FedAvg, once split across two workers
    devices = {f"dev-{i}": 10 + 7 * i for i in range(6)}
    base = [np.ones(s, dtype=np.float32) for s in SHAPES]
    single = make_strategy("fedavg")
    single.begin_round(base)
    for device, n in devices.items():
        single.accumulate(gen_delta(int(device.split("-")[1])), n, device)
    book = PartialSumBook("ward-7", 4, 3, SHAPES)
    book.offer(gen_partial("worker-2", {k: v for k, v in devices.items() if k < "dev-2"}))
    book.offer(gen_partial("worker-1", {k: v for k, v in devices.items() if k >= "dev-2"}))
    coordinator = make_strategy("fedavg")
    assert isinstance(coordinator, StreamingStrategy)
    coordinator.begin_round(base)
    # Execute
    fold_into(coordinator, book.combined())
    # Assert
    expected, got = single.finish_round(base), coordinator.finish_round(base)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-12)
    assert book.total_weight == sum(devices.values())


def test_newer_sequence_replaces_and_older_is_refused() -> None:
    book = PartialSumBook("ward-7", 4, 3, SHAPES)
    assert book.offer(gen_partial("worker-1", {"dev-1": 5}, sequence=2)) is None
    assert book.offer(gen_partial("worker-1", {"dev-1": 5, "dev-2": 6}, sequence=3)) is None
    assert book.offer(gen_partial("worker-1", {"dev-1": 5}, sequence=3)) == "stale_sequence"
    assert book.participants == {"dev-1", "dev-2"} and book.total_weight == 11


def test_other_rounds_and_versions_are_refused_by_name() -> None:
    book = PartialSumBook("ward-7", 4, 3, SHAPES)
    assert book.offer(gen_partial("worker-1", {"dev-1": 5}, round_id=3)) == "stale_round"
    assert book.offer(gen_partial("worker-1", {"dev-1": 5}, round_id=5)) == "future_round"
    assert PartialSumBook("ward-7", 4, 2, SHAPES).offer(gen_partial("w-1", {"dev-1": 1})) == (
        "base_version"
    )
    assert PartialSumBook("ward-8", 4, 3, SHAPES).offer(gen_partial("w-1", {"dev-1": 1})) == "fleet"
    assert PartialSumBook("ward-7", 4, 3, [(8,)]).offer(gen_partial("w-1", {"dev-1": 1})) == "shape"


def test_a_device_in_two_sums_blocks_the_total_until_the_larger_id_drops_it() -> None:
    # Prepare: dev-3 committed by worker-1, then its resend accepted by worker-2
    book = PartialSumBook("ward-7", 4, 3, SHAPES)
    book.offer(gen_partial("worker-1", {"dev-1": 5, "dev-3": 7}))
    book.offer(gen_partial("worker-2", {"dev-2": 6, "dev-3": 7}))
    assert book.overlaps() == {"dev-3": {"worker-1", "worker-2"}}
    with pytest.raises(AggregationError):
        book.combined()
    # Execute: each worker applies the owner rule to what it sees of the other
    keep = devices_to_drop("worker-1", {"dev-1", "dev-3"}, {"worker-2": {"dev-2", "dev-3"}})
    drop = devices_to_drop("worker-2", {"dev-2", "dev-3"}, {"worker-1": {"dev-1", "dev-3"}})
    book.offer(gen_partial("worker-2", {"dev-2": 6}, sequence=2))
    # Assert
    assert (keep, drop, owner_of({"worker-2", "worker-1"})) == (set(), {"dev-3"}, "worker-1")
    assert book.combined().participants == ("dev-1", "dev-2", "dev-3")
    assert book.combined().total_weight == 18


def test_at_the_deadline_an_unresolved_non_owner_is_left_out() -> None:
    book = PartialSumBook("ward-7", 4, 3, SHAPES)
    book.offer(gen_partial("worker-1", {"dev-1": 5, "dev-3": 7}))
    book.offer(gen_partial("worker-2", {"dev-2": 6, "dev-3": 7}))
    assert book.without_unresolved() == ["worker-2"]
    assert book.combined().participants == ("dev-1", "dev-3")


def test_folding_a_device_the_strategy_already_has_is_refused() -> None:
    strategy = make_strategy("fedavg")
    assert isinstance(strategy, StreamingStrategy)
    strategy.begin_round([np.zeros(s, dtype=np.float32) for s in SHAPES])
    strategy.accumulate(gen_delta(1), 5, "dev-1")
    book = PartialSumBook("ward-7", 4, 3, SHAPES)
    book.offer(gen_partial("worker-1", {"dev-1": 5}))
    with pytest.raises(DuplicateUpdateError):
        fold_into(strategy, book.combined())


def test_a_clipping_strategy_cannot_fold_sums_made_without_its_clipping() -> None:
    strategy = DpFedAvg(DpConfig(noise_multiplier=0.0, clip_norm=1.0))
    strategy.begin_round([np.zeros(s, dtype=np.float32) for s in SHAPES])
    book = PartialSumBook("ward-7", 4, 3, SHAPES)
    book.offer(gen_partial("worker-1", {"dev-1": 5}))
    with pytest.raises(AggregationError, match="cannot fold"):
        fold_into(strategy, book.combined())


def test_each_signer_is_verified_against_its_own_key_and_refusals_change_nothing() -> None:
    # Prepare: a registry of two sites' keys; a third key nobody registered
    from aggregator.device_registry import DeviceRegistry
    from fleet_protocol.partial_sum import encode_partial_sum
    from fleet_protocol.signing import generate_signing_key, public_key_to_bytes

    keys = {name: generate_signing_key() for name in ("site-1", "site-2", "mallory")}
    registry = DeviceRegistry("unused.json")
    for name in ("site-1", "site-2"):
        registry.add(name, public_key_to_bytes(keys[name].public_key()))
    verify = registry.verify_key()
    book = PartialSumBook("ward-7", 4, 3, SHAPES)
    good = gen_partial("site-1", {"dev-1": 5})
    hostile = {
        "wrong key": ("site-2", encode_partial_sum(gen_partial("site-2", {"dev-2": 9}),
                                                   keys["site-1"])),
        "unknown signer": ("mallory", encode_partial_sum(gen_partial("mallory", {"dev-3": 4}),
                                                         keys["mallory"])),
        "unsigned": ("site-2", encode_partial_sum(gen_partial("site-2", {"dev-2": 9}), None)),
        "another's topic": ("site-2", encode_partial_sum(good, keys["site-1"])),
    }  # fmt: skip

    # Execute: each hostile sum twice (a retained sum comes back), then a good one
    results = [book.verified(topic, payload, verify) for topic, payload in hostile.values()]
    again = [book.verified(topic, payload, verify) for topic, payload in hostile.values()]
    kept, line = book.verified("site-1", encode_partial_sum(good, keys["site-1"]), verify)

    # Assert: refused by reason, one log line per signer and reason a round, nothing kept
    assert [reason for reason, _ in results] == ["signature", "unknown_signer", "signature",
                                                 "signature"]  # fmt: skip
    said = [log.line for _, log in results if log is not None]
    assert len(said) == 2 and all("refused" in text and "none of it" in text for text in said)
    assert "partial/site-2" in said[0] and "does not verify" in said[0]
    assert "partial/mallory" in said[1] and "no trusted key" in said[1]
    assert all(log is None for _, log in again)
    assert book.latest == {} and book.participants == set()
    assert isinstance(kept, PartialSum) and line is None
    assert book.offer(kept) is None and book.participants == {"dev-1"}
