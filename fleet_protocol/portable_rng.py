"""A random stream a microcontroller reproduces bit for bit: SplitMix64 (Steele et al., 2014).

The device's head training shuffles with it and the int8 codec rounds with it, so the numpy
update of a Pi and the C update of the firmware (`firmware/core/iomt_rng.c`) see the same
batches and round the same elements up for the same seed. numpy's PCG64 has no small C twin.

Stream: `state += GAMMA; z = mix(state)` per draw. A draw as a double in [0, 1) is its top 53
bits times 2^-53; `permutation(n)` is Fisher-Yates from the end, `j = draw % (i + 1)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

MASK_64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB


def _mix(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64's finaliser on uint64 arrays (numpy wraps the products modulo 2^64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX_1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX_2)
    return z ^ (z >> np.uint64(31))


class PortableRng:
    """SplitMix64 from `seed` (taken modulo 2^64): integers, uniforms and permutations."""

    def __init__(self, seed: int) -> None:
        self.state = int(seed) & MASK_64

    def next_u64(self, count: int) -> NDArray[np.uint64]:
        """The next `count` 64-bit draws, in order."""
        steps = np.arange(1, count + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            states = np.uint64(self.state) + steps * np.uint64(GAMMA)
            draws = _mix(states)
        self.state = (self.state + count * GAMMA) & MASK_64
        return draws

    def random(self, size: int | Sequence[int] | None = None) -> NDArray[np.float64]:
        """Uniform doubles in [0, 1), shaped like numpy's `Generator.random(size)`."""
        shape = () if size is None else (size,) if isinstance(size, int) else tuple(size)
        count = int(np.prod(shape, dtype=np.int64))
        top = (self.next_u64(count) >> np.uint64(11)).astype(np.float64)
        return (top * 2.0**-53).reshape(shape)

    def permutation(self, n: int) -> NDArray[np.intp]:
        """0..n-1 shuffled by Fisher-Yates, the draw for position i picking j = draw % (i + 1)."""
        order = np.arange(n, dtype=np.intp)
        positions = range(n - 1, 0, -1)
        draws = self.next_u64(len(positions)).tolist()
        for i, draw in zip(positions, draws, strict=True):
            j = draw % (i + 1)
            order[i], order[j] = order[j], order[i]
        return order
