"""Head patches: bit-exact round trips, and refusals of patches that do not fit the base."""

from __future__ import annotations

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_protocol.errors import FederationError, MalformedMessageError, ShapeMismatchError
from fleet_protocol.model_patch import apply_patch, make_patch
from fleet_protocol.wire import message_sha256

BASE = [np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8), np.ones(3, np.float32)]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**16), st.floats(0.0, 1.0), st.floats(1e-6, 10.0))
def test_a_patch_gives_the_new_head_bit_for_bit(seed: int, share: float, size: float) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    new = [(b + size * rng.normal(size=b.shape) * (rng.random(b.shape) < share)).astype(
        np.float32) for b in BASE]  # fmt: skip
    # Execute
    patched = apply_patch(BASE, make_patch(BASE, new) or b"")
    # Assert
    assert message_sha256(patched) == message_sha256(new)


def test_a_sparse_change_makes_a_patch_far_smaller_than_the_head() -> None:
    # Prepare
    base = [np.random.default_rng(0).normal(size=(136, 32)).astype(np.float32)]
    new = [base[0].copy()]
    new[0][::10] += np.float32(0.01)
    # Execute
    patch = make_patch(base, new)
    # Assert
    assert patch is not None and len(patch) < base[0].nbytes // 4


def test_heads_of_other_shapes_have_no_patch() -> None:
    assert make_patch(BASE, [BASE[0]]) is None


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        (b"\x00" * 268, MalformedMessageError),  # not zstd
        (zstandard.compress(b"\x00" * 264), ShapeMismatchError),  # one element short
        (zstandard.compress(b"\x00" * 10_000), FederationError),  # larger than the base
        (zstandard.compress(b"\x00" * 256 + np.array([0x40000000], "<u4").tobytes() + b"\x00" * 8),
         MalformedMessageError),  # turns the bias's 1.0 (0x3F800000) into inf (0x7F800000)
    ],
)  # fmt: skip
def test_patches_that_do_not_fit_are_refused(patch: bytes, error: type) -> None:
    with pytest.raises(error):
        apply_patch(BASE, patch)
