"""Named arrays and weights as `.npz` blobs (no pickle), for SQLite columns on either side.

One implementation for the aggregator's state file and the device's sample store.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from fleet_protocol.types import ArrayState, Weights


def arrays_to_bytes(arrays: ArrayState) -> bytes:
    """Named arrays as an uncompressed `.npz` blob."""
    buffer = io.BytesIO()
    save: Any = np.savez  # numpy's stub types **arrays as its allow_pickle flag
    save(buffer, allow_pickle=False, **{k: np.asarray(v) for k, v in arrays.items()})
    return buffer.getvalue()


def arrays_from_bytes(blob: bytes) -> ArrayState:
    """Inverse of `arrays_to_bytes`; object arrays are refused (allow_pickle=False)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def weights_to_bytes(weights: Weights) -> bytes:
    """Weights as a blob, in order (`w000`, `w001`, ...)."""
    return arrays_to_bytes({f"w{i:03d}": np.asarray(w) for i, w in enumerate(weights)})


def weights_from_bytes(blob: bytes) -> Weights:
    """Inverse of `weights_to_bytes`."""
    arrays = arrays_from_bytes(blob)
    return [arrays[key].astype(np.float32) for key in sorted(arrays)]
