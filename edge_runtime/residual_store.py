"""The device's error-feedback residual: what top-k left unsent, kept per model across restarts.

Top-k sends a few entries of each delta; the rest is added to the next round's delta (error
feedback), so nothing is lost, only delayed. The residual is written in the same transaction
that records the round as sent (`SampleStore.record_round_sent`): after a crash either both
the round and its residual are committed, or neither is and the round is trained again from
the residual before it. Keyed by fleet and head shapes, so a new bundle never inherits one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from fleet_protocol.array_blobs import weights_from_bytes, weights_to_bytes
from fleet_protocol.types import Weights

# Sample store schema version 3 (`edge_runtime.sample_store_schema.MIGRATIONS`).
RESIDUALS_SCHEMA = """
CREATE TABLE residuals (
    model_key TEXT PRIMARY KEY,
    round_id INTEGER NOT NULL,
    tensors BLOB NOT NULL,
    updated_at REAL NOT NULL
);
"""


@dataclass(frozen=True, eq=False)
class PendingResidual:
    """The residual to commit with a sent round; `weights` None clears it (all was sent)."""

    model_key: str
    weights: Weights | None


def model_key(fleet: str, shapes: list[tuple[int, ...]]) -> str:
    """Which model a residual belongs to: the fleet's head, by its tensor shapes."""
    return fleet + ":" + ",".join("x".join(str(d) for d in shape) for shape in shapes)


def write_residual(db: sqlite3.Connection, pending: PendingResidual, round_id: int,
                   now: float) -> None:  # fmt: skip
    """Store (or clear) a residual; the caller holds the transaction."""
    if pending.weights is None:
        db.execute("DELETE FROM residuals WHERE model_key = ?", (pending.model_key,))
        return
    db.execute(
        "INSERT INTO residuals (model_key, round_id, tensors, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(model_key) DO UPDATE SET round_id = excluded.round_id,"
        " tensors = excluded.tensors, updated_at = excluded.updated_at",
        (pending.model_key, round_id, weights_to_bytes(pending.weights), now),
    )


def read_residual(db: sqlite3.Connection, key: str) -> Weights | None:
    """The stored residual of a model, or None (none yet, or unreadable: start afresh)."""
    row = db.execute("SELECT tensors FROM residuals WHERE model_key = ?", (key,)).fetchone()
    if row is None:
        return None
    try:
        return weights_from_bytes(row[0])
    except (OSError, ValueError, KeyError):
        return None
