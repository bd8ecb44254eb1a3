"""An aggregator worker's own SQLite file: the updates it acknowledged in the open round.

A worker commits a whole batch of accepted updates in one transaction (group commit: one fsync
for many updates) and acknowledges them only after that commit. It keeps each update's bytes
as received, not a running sum: the commit stays small, and a restarted worker rebuilds its
partial sum by decoding them again, exactly as before (decoding is deterministic). Only the open
round is kept; a new round's announcement clears the previous one's rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from fleet_protocol.sqlite_transaction import ImmediateTransaction

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS worker_round (
        id INTEGER PRIMARY KEY CHECK (id = 1), round_id INTEGER NOT NULL,
        base_version INTEGER NOT NULL, changes INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS worker_update (
        round_id INTEGER NOT NULL, device_id TEXT NOT NULL, sequence INTEGER NOT NULL,
        num_examples INTEGER NOT NULL, sha256 TEXT NOT NULL, payload BLOB NOT NULL,
        received_unix REAL NOT NULL, PRIMARY KEY (round_id, device_id))""",
)


@dataclass(frozen=True)
class StoredUpdate:
    """One acknowledged update of the open round, as committed."""

    round_id: int
    device_id: str
    sequence: int
    num_examples: int
    sha256: str
    payload: bytes
    received_unix: float


@dataclass(frozen=True)
class WorkerRound:
    """The round a worker collects for; `changes` grows with every add or drop (its sequence)."""

    round_id: int
    base_version: int
    changes: int


class WorkerStore:
    """The worker's durable memory; every write is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        # 16 KiB pages (a new file; SQLite keeps an existing file's size): a ~5 KB update
        # fits one page instead of spilling into overflow pages, half the CPU per commit
        self._db.execute("PRAGMA page_size=16384")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            self._db.execute(statement)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> WorkerStore:
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None):
        self.close()

    def open_round(self) -> WorkerRound | None:
        """The round the worker last collected for (None on a fresh file)."""
        row = self._db.execute(
            "SELECT round_id, base_version, changes FROM worker_round WHERE id = 1"
        ).fetchone()
        return None if row is None else WorkerRound(*row)

    def updates(self, round_id: int) -> list[StoredUpdate]:
        """The committed updates of a round, in commit order."""
        rows = self._db.execute(
            "SELECT round_id, device_id, sequence, num_examples, sha256, payload, received_unix"
            " FROM worker_update WHERE round_id = ? ORDER BY rowid", (round_id,)
        ).fetchall()  # fmt: skip
        return [StoredUpdate(*row) for row in rows]

    def start_round(self, round_id: int, base_version: int) -> None:
        """Collect for a new round: forget the previous round's updates."""
        with ImmediateTransaction(self._db):
            self._db.execute("DELETE FROM worker_update WHERE round_id != ?", (round_id,))
            self._db.execute(
                "INSERT OR REPLACE INTO worker_round (id, round_id, base_version, changes)"
                " VALUES (1, ?, ?, 0)", (round_id, base_version),
            )  # fmt: skip

    def commit_batch(self, updates: list[StoredUpdate], dropped: list[str], changes: int) -> None:
        """Add accepted updates and drop devices another signer owns, in one transaction."""
        with ImmediateTransaction(self._db):
            self._db.executemany(
                "INSERT INTO worker_update (round_id, device_id, sequence, num_examples, sha256,"
                " payload, received_unix) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(u.round_id, u.device_id, u.sequence, u.num_examples, u.sha256, u.payload,
                  u.received_unix) for u in updates],
            )  # fmt: skip
            self._db.executemany(
                "DELETE FROM worker_update WHERE device_id = ?", [(d,) for d in dropped]
            )
            self._db.execute("UPDATE worker_round SET changes = ? WHERE id = 1", (changes,))
