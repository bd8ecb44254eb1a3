"""Shared type aliases of the federation package (Flower's `typing.py` in miniature)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Weights = list[NDArray[np.float32]]
"""A model (or a delta) as float32 tensors in a fixed order, e.g. `[kernel_0, bias_0, ...]`."""

Metrics = dict[str, float]
"""Scalar metrics a device reports next to its update (loss, accuracy, ...)."""

ArrayState = dict[str, NDArray[Any]]
"""Named arrays a strategy persists between updates (savez-compatible, no pickle)."""
