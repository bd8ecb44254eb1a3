"""Sample stores written by earlier releases open, migrate and keep every row and round."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.errors import StoreError
from edge_runtime.sample_store import SampleStore
from edge_runtime.sample_store_schema import MIGRATIONS

# The exact DDL of the last release before schema versions (round ids as TEXT, no user_version).
RELEASED_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    start_ts REAL NOT NULL,
    end_ts REAL NOT NULL,
    window BLOB,
    window_shape TEXT,
    embedding BLOB,
    label INTEGER,
    label_source TEXT,
    confidence REAL,
    predicted INTEGER,
    nbytes INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_end ON samples (end_ts);
CREATE TABLE IF NOT EXISTS totals (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals (one, rows, bytes)
    SELECT 1, COUNT(*), COALESCE(SUM(nbytes), 0) FROM samples;
CREATE TRIGGER IF NOT EXISTS totals_insert AFTER INSERT ON samples BEGIN
    UPDATE totals SET rows = rows + 1, bytes = bytes + NEW.nbytes;
END;
CREATE TRIGGER IF NOT EXISTS totals_delete AFTER DELETE ON samples BEGIN
    UPDATE totals SET rows = rows - 1, bytes = bytes - OLD.nbytes;
END;
CREATE TRIGGER IF NOT EXISTS totals_update AFTER UPDATE OF nbytes ON samples BEGIN
    UPDATE totals SET bytes = bytes - OLD.nbytes + NEW.nbytes;
END;
CREATE TABLE IF NOT EXISTS label_marks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t0 REAL NOT NULL,
    t1 REAL NOT NULL,
    label INTEGER NOT NULL,
    source TEXT NOT NULL,
    is_event INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS label_marks_end ON label_marks (t1);
CREATE TABLE IF NOT EXISTS rounds (
    round_id TEXT PRIMARY KEY,
    base_version TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    sent_at REAL,
    num_examples INTEGER
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _released_store(path: Path) -> None:
    """A store as that release left it: samples, labels, rounds as text, acks in meta."""
    db = sqlite3.connect(path)
    db.executescript(RELEASED_SCHEMA)
    embedding = np.arange(4, dtype=np.float32).tobytes()
    for i in range(3):
        db.execute(
            "INSERT INTO samples (start_ts, end_ts, embedding, label, label_source, nbytes,"
            " created_at) VALUES (?, ?, ?, ?, 'user', ?, 0)",
            (float(i), i + 1.0, embedding, i % 2, len(embedding)),
        )
    db.executemany(
        "INSERT INTO rounds (round_id, base_version, sequence, sent, sent_at, num_examples)"
        " VALUES (?, ?, ?, 1, 10.0, 3)",
        [("3", "2", 1), ("12", "11", 2), ("r-7", "x", 3)],
    )
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("ack:3", "accepted"), ("labels", "[]")])
    db.commit()
    db.close()


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_a_store_of_the_released_schema_migrates_to_integer_round_ids(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "device.sqlite"
    _released_store(path)
    assert _user_version(path) == 0

    # Execute
    with SampleStore(path) as store:
        rounds = store.recent_rounds()
        outcomes = store.round_outcomes()
        counts = store.counts()
        X, y = store.labelled_embeddings()
        store.add_window(10.0, 11.0, embedding=np.zeros(4, np.float32))
        rows_after_insert = store.counts().rows
        next_sequence = store.next_sequence()

    # Assert
    assert _user_version(path) == len(MIGRATIONS) == 3
    assert [(r.round_id, r.base_version, r.sequence) for r in rounds] == [(12, 11, 2), (3, 2, 1)]
    assert outcomes == {3: "accepted"}
    assert (counts.rows, counts.labelled, X.shape, y.tolist()) == (3, 3, (3, 4), [0, 1, 0])
    assert rows_after_insert == 4  # the totals triggers survived the migration
    assert next_sequence == 3  # the dropped non-numeric row held no real round


def test_round_ids_are_integer_columns_and_sort_as_numbers(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "device.sqlite"
    with SampleStore(path) as store:
        for sequence, round_id in enumerate((9, 10, 100), start=1):
            store.record_round_sent(round_id, round_id - 1, sequence)

    # Execute
    with sqlite3.connect(path) as db:
        columns = {row[1]: row[2] for row in db.execute("PRAGMA table_info(rounds)")}
        ordered = [row[0] for row in db.execute("SELECT round_id FROM rounds ORDER BY round_id")]

    # Assert
    assert (columns["round_id"], columns["base_version"]) == ("INTEGER", "INTEGER")
    assert ordered == [9, 10, 100]


def test_reopening_a_migrated_store_runs_no_migration_again(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "device.sqlite"
    _released_store(path)
    SampleStore(path).close()

    # Execute
    with SampleStore(path) as store:
        rounds = [r.round_id for r in store.recent_rounds()]

    # Assert
    assert rounds == [12, 3] and _user_version(path) == 3


def test_a_store_newer_than_this_release_is_refused_with_one_line(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "device.sqlite"
    SampleStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")

    # Execute
    with pytest.raises(StoreError) as raised:
        SampleStore(path)

    # Assert
    message = str(raised.value)
    assert "schema version 7" in message and "newer" in message and "\n" not in message
    assert _user_version(path) == 7
