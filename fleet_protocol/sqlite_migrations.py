"""Ordered schema migrations for the two crash-safe SQLite stores (device and aggregator).

A store's schema version lives in `PRAGMA user_version`. Migration N takes a database at
version N-1 to version N in one transaction together with the new `user_version`, so a crash
mid-migration leaves the old version intact. Databases written before versions existed read
as version 0; their tables are those of migration 1, which creates only what is missing. A
database newer than this release knows is refused, never guessed at.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_TOO_NEW = (
    "{what} {path} has schema version {found}, newer than this release knows ({known}); "
    "upgrade iomt-edge-fl to open it"
)


class SchemaVersionError(Exception):
    """The database's schema version is newer than this code knows."""


@dataclass(frozen=True)
class Migration:
    """One step: `version` is the schema version after `apply` ran."""

    version: int
    apply: Callable[[sqlite3.Connection], None]


def script(sql: str) -> Callable[[sqlite3.Connection], None]:
    """A migration step made of SQL statements (run inside the migration's transaction)."""

    def run(db: sqlite3.Connection) -> None:
        for statement in _statements(sql):
            db.execute(statement)

    return run


def _statements(sql: str) -> list[str]:
    """Split at the semicolons that end a statement (not those inside a trigger body)."""
    statements, pending = [], ""
    for piece in sql.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.replace(";", "").strip():
        raise ValueError(f"incomplete SQL statement: {pending.strip()!r}")
    return statements


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration], what: str, path: str) -> int:
    """Bring `db` (autocommit mode) to the last migration's version; returns that version."""
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(migrations) + 1)):
        raise ValueError(f"migrations must be numbered 1..n in order, got {versions}")
    found = schema_version(db)
    if found > len(migrations):
        raise SchemaVersionError(
            _TOO_NEW.format(what=what, path=path, found=found, known=len(migrations))
        )
    for migration in migrations[found:]:
        _apply(db, migration)
    return len(migrations)


def _apply(db: sqlite3.Connection, migration: Migration) -> None:
    """Run one step unless another process already did (the version is re-read under lock)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if schema_version(db) < migration.version:
            migration.apply(db)
            db.execute(f"PRAGMA user_version = {migration.version:d}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
