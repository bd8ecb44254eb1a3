"""Top-k with error feedback on the device: what a delta becomes before it is encoded.

Pure: takes the delta, the announced encoding and the residual the store holds, returns what
to send and the residual to commit with the sent round (`edge_runtime.residual_store`). A dense
round (no density) sends delta + residual and clears it, so switching codecs loses nothing.
The benches call this too, so the figures are those of the device's path.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet_protocol.tensor_codecs import TopKSparsifier
from fleet_protocol.types import Weights
from fleet_protocol.update_encoding import UpdateEncoding


@dataclass(frozen=True, eq=False)
class SparseDelta:
    """The delta to encode and the residual left behind (None: nothing to store or clear)."""

    sent: Weights
    residual: Weights | None
    changed: bool  # whether the store's residual must be written (or cleared)


def sparsify_delta(
    delta: Weights, encoding: UpdateEncoding, residual: Weights | None
) -> SparseDelta:
    """Error-corrected top-k of `delta` at the announced density (all of it if dense).

    A residual whose shapes differ from the delta's (a different head) is dropped.
    """
    if residual is not None and [r.shape for r in residual] != [d.shape for d in delta]:
        residual = None
    if encoding.density is None:
        if residual is None:
            return SparseDelta(delta, None, changed=False)
        corrected = [d + r for d, r in zip(delta, residual, strict=True)]
        return SparseDelta(corrected, None, changed=True)
    sparsifier = TopKSparsifier(encoding.density)
    sparsifier.residual = residual
    sent = sparsifier.sparsify(delta)
    return SparseDelta(sent, sparsifier.residual, changed=True)
