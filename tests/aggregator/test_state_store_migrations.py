"""Aggregator state files from before schema versions migrate; newer ones are refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from aggregator.state_store import MIGRATIONS, StateStore, weights_to_bytes
from fleet_protocol.sqlite_migrations import SchemaVersionError

# The exact DDL of the last release before schema versions (no user_version).
RELEASED_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    version INTEGER PRIMARY KEY, parent INTEGER, round_id INTEGER,
    sha256 TEXT NOT NULL, weights BLOB NOT NULL, created_unix REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
    round_id INTEGER PRIMARY KEY, base_version INTEGER NOT NULL, opened_unix REAL NOT NULL,
    deadline_unix REAL NOT NULL, quorum INTEGER NOT NULL, status TEXT NOT NULL,
    result_version INTEGER, closed_unix REAL, metrics TEXT);
CREATE TABLE IF NOT EXISTS updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT, round_id INTEGER NOT NULL, device_id TEXT NOT NULL,
    sequence INTEGER NOT NULL, num_examples INTEGER NOT NULL, payload_bytes INTEGER NOT NULL,
    payload_sha256 TEXT NOT NULL, received_unix REAL NOT NULL,
    UNIQUE (round_id, device_id), UNIQUE (round_id, device_id, sequence));
CREATE INDEX IF NOT EXISTS updates_device ON updates (device_id, sequence);
CREATE TABLE IF NOT EXISTS strategy_state (
    round_id INTEGER PRIMARY KEY, arrays BLOB NOT NULL, num_updates INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS strategy_carry (
    id INTEGER PRIMARY KEY CHECK (id = 0), arrays BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS rejections (
    round_id INTEGER NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (round_id, reason));
CREATE TABLE IF NOT EXISTS traffic (
    round_id INTEGER PRIMARY KEY, bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL);
"""
WEIGHTS = [np.full((2, 3), 0.5, np.float32), np.zeros(3, np.float32)]


def _released_state(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(RELEASED_SCHEMA)
    db.execute(
        "INSERT INTO versions VALUES (0, NULL, NULL, 'abc', ?, 1.0)", (weights_to_bytes(WEIGHTS),)
    )
    db.execute("INSERT INTO rounds VALUES (1, 0, 1.0, 61.0, 2, 'open', NULL, NULL, NULL)")
    db.commit()
    db.close()


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_a_state_file_of_the_released_schema_opens_at_the_current_version(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "agg.sqlite"
    _released_state(path)

    # Execute
    with StateStore(path) as store:
        latest = store.latest_version()
        weights = store.load_weights(0)
        rounds = store.rounds()

    # Assert
    assert _user_version(path) == len(MIGRATIONS)
    assert latest is not None and (latest.version, latest.sha256) == (0, "abc")
    np.testing.assert_array_equal(weights[0], WEIGHTS[0])
    assert [(r.round_id, r.status) for r in rounds] == [(1, "open")]


def test_a_state_file_newer_than_this_release_is_refused_with_one_line(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "agg.sqlite"
    StateStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")

    # Execute
    with pytest.raises(SchemaVersionError) as raised:
        StateStore(path)

    # Assert
    assert "newer than this release" in str(raised.value) and "\n" not in str(raised.value)
