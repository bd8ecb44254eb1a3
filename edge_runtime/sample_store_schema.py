"""The sample store's schema history: each release's tables, as ordered migrations.

A store written by any earlier release opens in this one: `migrate` runs the steps it lacks.
"""

from __future__ import annotations

from edge_runtime.residual_store import RESIDUALS_SCHEMA
from fleet_protocol.sqlite_migrations import Migration, script

# Version 1: the schema of every release before schema versions (round ids as TEXT).
_SCHEMA_V1 = """
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

# Version 2: round ids and base versions are integers, as on the wire. Every release wrote
# them as decimal text; a row whose id is not a decimal integer was never a real round.
_ROUND_IDS_AS_INTEGERS = """
CREATE TABLE rounds_v2 (
    round_id INTEGER PRIMARY KEY,
    base_version INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    sent_at REAL,
    num_examples INTEGER
);
INSERT INTO rounds_v2 (round_id, base_version, sequence, sent, sent_at, num_examples)
    SELECT CAST(round_id AS INTEGER), CAST(base_version AS INTEGER), sequence, sent, sent_at,
           num_examples
    FROM rounds
    WHERE round_id GLOB '[0-9]*' AND round_id NOT GLOB '*[^0-9]*'
      AND base_version GLOB '[0-9]*' AND base_version NOT GLOB '*[^0-9]*';
DROP TABLE rounds;
ALTER TABLE rounds_v2 RENAME TO rounds;
"""

MIGRATIONS = (
    Migration(1, script(_SCHEMA_V1)),
    Migration(2, script(_ROUND_IDS_AS_INTEGERS)),
    Migration(3, script(RESIDUALS_SCHEMA)),  # top-k error-feedback residuals
)
"""Ordered schema migrations; the last one's version is what this release writes."""
