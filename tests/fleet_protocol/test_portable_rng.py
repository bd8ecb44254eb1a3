"""SplitMix64 as the firmware draws it: reference outputs, uniforms, permutations."""

from __future__ import annotations

import numpy as np

from fleet_protocol.portable_rng import PortableRng


def test_draws_match_the_splitmix64_reference_outputs() -> None:
    # Prepare / Execute: Vigna's splitmix64.c seeded with 1234567
    draws = PortableRng(1234567).next_u64(5).tolist()
    # Assert
    assert draws == [6457827717110365317, 3203168211198807973, 9817491932198370423,
                     4593380528125082431, 16408922859458223821]  # fmt: skip


def test_the_stream_continues_across_calls_and_wraps_seeds_modulo_2_64() -> None:
    # Prepare
    whole = PortableRng(7).next_u64(6)
    split = PortableRng(7)
    # Execute
    parts = np.concatenate([split.next_u64(2), split.next_u64(4)])
    # Assert
    assert parts.tolist() == whole.tolist()
    assert PortableRng(-1).next_u64(3).tolist() == PortableRng(2**64 - 1).next_u64(3).tolist()


def test_uniforms_are_the_top_53_bits() -> None:
    # Prepare
    draws = PortableRng(3).next_u64(4)
    # Execute
    uniforms = PortableRng(3).random((2, 2))
    # Assert
    assert uniforms.shape == (2, 2)
    assert uniforms.reshape(-1).tolist() == [(int(d) >> 11) / 2**53 for d in draws]
    many = PortableRng(0).random(10_000)
    assert 0.0 <= float(many.min()) < float(many.max()) < 1.0


def test_permutation_is_fisher_yates_from_the_end() -> None:
    # Prepare: the same shuffle written out with scalar draws
    n = 9
    draws = PortableRng(11).next_u64(n - 1).tolist()
    expected = list(range(n))
    for draw, i in zip(draws, range(n - 1, 0, -1), strict=True):
        j = draw % (i + 1)
        expected[i], expected[j] = expected[j], expected[i]
    # Execute
    order = PortableRng(11).permutation(n)
    # Assert
    assert order.tolist() == expected
    assert sorted(PortableRng(5).permutation(1000).tolist()) == list(range(1000))
    assert PortableRng(5).permutation(1).tolist() == [0]
    assert PortableRng(5).permutation(0).tolist() == []
