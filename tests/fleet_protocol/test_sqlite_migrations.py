"""Ordered SQLite migrations: each step atomic with its version, triggers split correctly."""

from __future__ import annotations

import sqlite3

import pytest

from fleet_protocol.sqlite_migrations import Migration, migrate, schema_version, script

TRIGGERED = """
CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER);
CREATE TABLE total (one INTEGER PRIMARY KEY, n INTEGER);
INSERT INTO total VALUES (1, 0);
CREATE TRIGGER items_added AFTER INSERT ON items BEGIN
    UPDATE total SET n = n + NEW.n;
END;
"""


def _db() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", isolation_level=None)


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_steps_run_in_order_and_a_trigger_body_stays_one_statement() -> None:
    # Prepare
    db = _db()
    steps = [Migration(1, script(TRIGGERED)), Migration(2, script("ALTER TABLE items ADD x;"))]

    # Execute
    version = migrate(db, steps, "test store", ":memory:")
    db.execute("INSERT INTO items (n, x) VALUES (5, 1)")

    # Assert
    assert version == schema_version(db) == 2
    assert db.execute("SELECT n FROM total").fetchone()[0] == 5


def test_a_failing_step_leaves_the_previous_version_and_no_half_applied_change() -> None:
    # Prepare
    db = _db()

    def broken(connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE half (x)")
        raise RuntimeError("disk full")

    steps = [Migration(1, script("CREATE TABLE first (x);")), Migration(2, broken)]

    # Execute
    with pytest.raises(RuntimeError, match="disk full"):
        migrate(db, steps, "test store", ":memory:")

    # Assert
    assert schema_version(db) == 1
    assert _tables(db) == {"first"}


def test_migrations_must_be_numbered_from_one_without_gaps() -> None:
    with pytest.raises(ValueError, match="numbered"):
        migrate(_db(), [Migration(2, script("SELECT 1;"))], "test store", ":memory:")
