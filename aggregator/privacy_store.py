"""The privacy tables of the aggregator's state file: epsilon per device and per version.

Schema migration 2 of `aggregator.state_store` creates them. The sampling key (the secret
behind each round's sampling seed) is made once and kept, so a restarted aggregator announces
the same sample for a round it resumes.
"""

from __future__ import annotations

import os
import sqlite3

from aggregator.privacy_ledger import DevicePrivacy, VersionPrivacy
from fleet_protocol.sqlite_transaction import ImmediateTransaction

PRIVACY_SCHEMA = """
CREATE TABLE device_privacy (
    device_id TEXT PRIMARY KEY, rounds_in_population INTEGER NOT NULL,
    rounds_included INTEGER NOT NULL, epsilon REAL NOT NULL, epsilon_sample_known REAL NOT NULL,
    budget_spent INTEGER NOT NULL, updated_unix REAL NOT NULL);
CREATE TABLE version_privacy (
    version INTEGER PRIMARY KEY, epsilon REAL NOT NULL, delta REAL NOT NULL,
    rounds INTEGER NOT NULL);
CREATE TABLE privacy_key (id INTEGER PRIMARY KEY CHECK (id = 0), key BLOB NOT NULL);
"""


class PrivacyTables:
    """Reads and writes the privacy rows on the state store's connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def save(self, devices: list[DevicePrivacy], version: VersionPrivacy | None,
             now: float) -> None:  # fmt: skip
        """Store a closed round's charges in one transaction."""
        with ImmediateTransaction(self._db):
            self._db.executemany(
                "INSERT OR REPLACE INTO device_privacy VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(d.device_id, d.rounds_in_population, d.rounds_included, d.epsilon,
                  d.epsilon_sample_known, int(d.budget_spent), now) for d in devices],
            )  # fmt: skip
            if version is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO version_privacy VALUES (?, ?, ?, ?)",
                    (version.version, version.epsilon, version.delta, version.rounds),
                )

    def devices(self) -> dict[str, DevicePrivacy]:
        rows = self._db.execute(
            "SELECT device_id, rounds_in_population, rounds_included, epsilon,"
            " epsilon_sample_known, budget_spent FROM device_privacy ORDER BY device_id"
        ).fetchall()
        return {r[0]: DevicePrivacy(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows}

    def versions(self) -> dict[int, VersionPrivacy]:
        rows = self._db.execute("SELECT * FROM version_privacy ORDER BY version").fetchall()
        return {r[0]: VersionPrivacy(*r) for r in rows}

    def sampling_key(self) -> bytes:
        """The secret behind the sampling seeds, made on first use."""
        row = self._db.execute("SELECT key FROM privacy_key WHERE id = 0").fetchone()
        if row is not None:
            return bytes(row[0])
        key = os.urandom(32)
        self._db.execute("INSERT INTO privacy_key VALUES (0, ?)", (key,))
        return key
