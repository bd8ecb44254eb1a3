"""One write transaction on an autocommit SQLite connection, shared by the two crash-safe stores.

`BEGIN IMMEDIATE` takes the write lock up front, so what a transaction reads stays true until it
commits even when another process (a labeller, a second aggregator) writes the same file.
"""

from __future__ import annotations

import sqlite3


class ImmediateTransaction:
    """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
