"""The aggregator's durable state in one SQLite file: rounds, global versions, accepted updates.

WAL journal + `synchronous=FULL`: a commit survives `kill -9` and power loss. An accepted update
and the strategy's accumulator state after folding it in are written in ONE transaction, so after
a crash the round resumes from exactly the updates that were acknowledged: none lost (the ack is
published only after the commit) and none counted twice (the row is UNIQUE per round and device).
Arrays are stored as `np.save(..., allow_pickle=False)` bytes; never pickle.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

from aggregator.privacy_store import PRIVACY_SCHEMA, PrivacyTables
from fleet_protocol.array_blobs import (
    arrays_from_bytes,
    arrays_to_bytes,
    weights_from_bytes,
    weights_to_bytes,
)
from fleet_protocol.sqlite_migrations import Migration, migrate, script
from fleet_protocol.sqlite_transaction import ImmediateTransaction
from fleet_protocol.types import ArrayState, Weights

SCHEMA = """
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
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, online INTEGER NOT NULL, last_seen_unix REAL NOT NULL,
    model_version INTEGER, free_disk_bytes INTEGER, cpu_temp_c REAL, store_bytes INTEGER,
    outbox_backlog INTEGER);
CREATE TABLE IF NOT EXISTS candidates (
    round_id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, weights BLOB NOT NULL,
    accuracy REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rollbacks (
    version INTEGER PRIMARY KEY, source_version INTEGER NOT NULL, after_round INTEGER NOT NULL,
    abandoned_round INTEGER, created_unix REAL NOT NULL);
CREATE TABLE IF NOT EXISTS device_rejections (
    device_id TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (device_id, reason));
"""

PROMOTIONS = """
CREATE TABLE promotions (
    version INTEGER PRIMARY KEY, round_id INTEGER NOT NULL, after_round INTEGER NOT NULL,
    abandoned_round INTEGER, created_unix REAL NOT NULL);
"""

MIGRATIONS = (
    Migration(1, script(SCHEMA)),
    Migration(2, script(PRIVACY_SCHEMA)),
    Migration(3, script(PROMOTIONS)),
)
"""Ordered schema migrations (`PRAGMA user_version`); 1 is every release before versions,
2 adds epsilon per device and per version (`aggregator.privacy_store`), 3 the record of
candidates promoted by hand."""


@dataclass(frozen=True)
class RoundRecord:
    """One round as stored."""

    round_id: int
    base_version: int
    opened_unix: float
    deadline_unix: float
    quorum: int
    status: str  # "open" | "closed"
    result_version: int | None
    closed_unix: float | None
    metrics: dict[str, Any] | None


@dataclass(frozen=True)
class VersionRecord:
    """One global head version as stored (weights loaded on demand)."""

    version: int
    parent: int | None
    round_id: int | None
    sha256: str
    created_unix: float


@dataclass(frozen=True)
class AcceptedUpdate:
    """Bookkeeping of one accepted update (the delta itself lives in the strategy state)."""

    round_id: int
    device_id: str
    sequence: int
    num_examples: int
    payload_bytes: int
    payload_sha256: str


@dataclass(frozen=True)
class DeviceRecord:
    """What the aggregator last heard from one device (its retained status and its updates)."""

    device_id: str
    online: bool
    last_seen_unix: float
    model_version: int | None = None
    free_disk_bytes: int | None = None
    cpu_temp_c: float | None = None
    store_bytes: int | None = None
    outbox_backlog: int | None = None
    last_round: int | None = None
    rejections: dict[str, int] = field(default_factory=dict)


_HEALTH_COLUMNS = ("free_disk_bytes", "cpu_temp_c", "store_bytes", "outbox_backlog")
_DEVICE_COLUMNS = (
    "device_id, online, last_seen_unix, model_version, free_disk_bytes, cpu_temp_c,"
    " store_bytes, outbox_backlog"
)


class StateStore:
    """SQLite-backed aggregator state; one writer (the service thread)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        try:
            migrate(self._db, MIGRATIONS, "aggregator state", str(self.path))
        except BaseException:
            self._db.close()
            raise
        self.privacy = PrivacyTables(self._db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> ImmediateTransaction:
        return ImmediateTransaction(self._db)

    # meta
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # versions
    def add_version(self, version: int, weights: Weights, parent: int | None, round_id: int | None,
                    sha256: str, now: float | None = None) -> None:  # fmt: skip
        """Store a global version (idempotent: re-adding the same version is a no-op)."""
        self._db.execute(
            "INSERT OR IGNORE INTO versions VALUES (?, ?, ?, ?, ?, ?)",
            (version, parent, round_id, sha256, weights_to_bytes(weights), now or time.time()),
        )

    def latest_version(self) -> VersionRecord | None:
        row = self._db.execute(
            "SELECT version, parent, round_id, sha256, created_unix FROM versions"
            " ORDER BY version DESC LIMIT 1"
        ).fetchone()
        return None if row is None else VersionRecord(*row)

    def versions(self) -> list[VersionRecord]:
        rows = self._db.execute(
            "SELECT version, parent, round_id, sha256, created_unix FROM versions ORDER BY version"
        ).fetchall()
        return [VersionRecord(*row) for row in rows]

    def load_weights(self, version: int) -> Weights:
        query = "SELECT weights FROM versions WHERE version=?"
        row = self._db.execute(query, (version,)).fetchone()
        if row is None:
            raise KeyError(f"no global version {version} in {self.path}")
        return weights_from_bytes(bytes(row[0]))

    # rounds
    def open_round(self, round_id: int, base_version: int, opened: float, deadline: float,
                   quorum: int, initial_state: ArrayState) -> None:  # fmt: skip
        """Record a new open round with the strategy's empty accumulator, atomically."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO rounds VALUES (?, ?, ?, ?, ?, 'open', NULL, NULL, NULL)",
                (round_id, base_version, opened, deadline, quorum),
            )
            self._db.execute(
                "INSERT INTO strategy_state VALUES (?, ?, 0)",
                (round_id, arrays_to_bytes(initial_state)),
            )
            self._db.execute("INSERT INTO traffic VALUES (?, 0, 0)", (round_id,))

    def open_round_record(self) -> RoundRecord | None:
        """The round left open (e.g. by a crash), if any."""
        rows = [r for r in self.rounds() if r.status == "open"]
        return rows[-1] if rows else None

    def rounds(self) -> list[RoundRecord]:
        rows = self._db.execute("SELECT * FROM rounds ORDER BY round_id").fetchall()
        return [_round_record(row) for row in rows]

    def close_round(self, round_id: int, version: int, weights: Weights, sha256: str,
                    metrics: dict[str, Any], closed: float,
                    carry: ArrayState | None = None) -> None:  # fmt: skip
        """Store the new version, the strategy's carried state, close the round: atomically."""
        with self._transaction():
            if carry is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO strategy_carry VALUES (0, ?)", (arrays_to_bytes(carry),)
                )
            self.add_version(version, weights, None, round_id, sha256, closed)
            self._db.execute(
                "UPDATE versions SET parent=(SELECT base_version FROM rounds WHERE round_id=?)"
                " WHERE version=?",
                (round_id, version),
            )
            self._db.execute(
                "UPDATE rounds SET status='closed', result_version=?, closed_unix=?, metrics=?"
                " WHERE round_id=?",
                (version, closed, json.dumps(metrics, sort_keys=True), round_id),
            )
            self._db.execute("DELETE FROM strategy_state WHERE round_id=?", (round_id,))

    def close_round_without_version(
        self, round_id: int, metrics: dict[str, Any], closed: float
    ) -> None:
        """Mark a round closed with no new version (deadline passed below quorum)."""
        with self._transaction():
            self._db.execute(
                "UPDATE rounds SET status='closed', result_version=base_version, closed_unix=?,"
                " metrics=? WHERE round_id=?",
                (closed, json.dumps(metrics, sort_keys=True), round_id),
            )
            self._db.execute("DELETE FROM strategy_state WHERE round_id=?", (round_id,))

    def update_round_metrics(self, round_id: int, metrics: dict[str, Any]) -> None:
        """Replace the stored metrics of a round (e.g. with final byte counts)."""
        self._db.execute(
            "UPDATE rounds SET metrics=? WHERE round_id=?",
            (json.dumps(metrics, sort_keys=True), round_id),
        )

    # updates
    def accept_update(self, update: AcceptedUpdate, state: ArrayState, received: float) -> None:
        """Commit an accepted update together with the accumulator that includes it."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO updates (round_id, device_id, sequence, num_examples, payload_bytes,"
                " payload_sha256, received_unix) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (update.round_id, update.device_id, update.sequence, update.num_examples,
                 update.payload_bytes, update.payload_sha256, received),
            )  # fmt: skip
            self._db.execute(
                "UPDATE strategy_state SET arrays=?, num_updates=num_updates+1 WHERE round_id=?",
                (arrays_to_bytes(state), update.round_id),
            )

    def strategy_state(self, round_id: int) -> ArrayState:
        row = self._db.execute(
            "SELECT arrays FROM strategy_state WHERE round_id=?", (round_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no strategy state for round {round_id}")
        return arrays_from_bytes(bytes(row[0]))

    def strategy_carry(self) -> ArrayState | None:
        """The strategy state saved when the last round closed (server optimiser moments)."""
        row = self._db.execute("SELECT arrays FROM strategy_carry WHERE id=0").fetchone()
        return None if row is None else arrays_from_bytes(bytes(row[0]))

    def accepted_updates(self, round_id: int) -> list[AcceptedUpdate]:
        rows = self._db.execute(
            "SELECT round_id, device_id, sequence, num_examples, payload_bytes, payload_sha256"
            " FROM updates WHERE round_id=? ORDER BY id",
            (round_id,),
        ).fetchall()
        return [AcceptedUpdate(*row) for row in rows]

    def find_update(self, round_id: int, device_id: str) -> AcceptedUpdate | None:
        row = self._db.execute(
            "SELECT round_id, device_id, sequence, num_examples, payload_bytes, payload_sha256"
            " FROM updates WHERE round_id=? AND device_id=?",
            (round_id, device_id),
        ).fetchone()
        return None if row is None else AcceptedUpdate(*row)

    def last_sequence(self, device_id: str) -> int | None:
        """Highest sequence number ever accepted from a device (replay protection)."""
        row = self._db.execute(
            "SELECT MAX(sequence) FROM updates WHERE device_id=?", (device_id,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def last_sequences(self) -> dict[str, int]:
        """Highest sequence ever accepted per device (what replay protection remembers)."""
        rows = self._db.execute("SELECT device_id, MAX(sequence) FROM updates GROUP BY device_id")
        return {str(device): int(sequence) for device, sequence in rows}

    # counters
    def batch(self) -> ImmediateTransaction:
        """One transaction for many counter writes (one fsync instead of one per write)."""
        return self._transaction()

    def count_rejection(self, round_id: int, reason: str, count: int = 1) -> None:
        self._db.execute(
            "INSERT INTO rejections VALUES (?, ?, ?)"
            " ON CONFLICT (round_id, reason) DO UPDATE SET count=count+excluded.count",
            (round_id, reason, count),
        )

    def rejections(self, round_id: int) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT reason, count FROM rejections WHERE round_id=? ORDER BY reason", (round_id,)
        ).fetchall()
        return {str(reason): int(count) for reason, count in rows}

    def add_traffic(self, round_id: int, bytes_in: int = 0, bytes_out: int = 0) -> None:
        self._db.execute(
            "INSERT INTO traffic VALUES (?, ?, ?) ON CONFLICT (round_id) DO UPDATE SET"
            " bytes_in=bytes_in+excluded.bytes_in, bytes_out=bytes_out+excluded.bytes_out",
            (round_id, bytes_in, bytes_out),
        )

    # promotion gate and rollbacks
    def add_candidate(self, round_id: int, weights: Weights, sha256: str, accuracy: float) -> None:
        """Keep an aggregate the promotion gate held back."""
        self._db.execute(
            "INSERT OR REPLACE INTO candidates VALUES (?, ?, ?, ?)",
            (round_id, sha256, weights_to_bytes(weights), accuracy),
        )

    def candidates(self) -> dict[int, float]:
        """Round id -> holdout accuracy of each held-back aggregate."""
        rows = self._db.execute("SELECT round_id, accuracy FROM candidates ORDER BY round_id")
        return {int(round_id): float(accuracy) for round_id, accuracy in rows}

    def roll_back(self, source: int, now: float) -> int:
        """Publish `source`'s weights again as the newest version; abandon an open round.

        A new version number (not the old one) is what makes every device follow: each
        installs the highest version it is offered. Returns the new version.
        """
        weights = self.load_weights(source)
        sha = self._db.execute("SELECT sha256 FROM versions WHERE version=?", (source,))
        with self._transaction():
            version, last, abandoned = self._add_newest(weights, source, sha.fetchone()[0], now)
            self._db.execute("INSERT INTO rollbacks VALUES (?, ?, ?, ?, ?)",
                             (version, source, last, abandoned, now))  # fmt: skip
        return version

    def promote(self, round_id: int, now: float) -> int:
        """Publish the candidate the promotion gate held back in `round_id` as the newest
        version (its parent: that round's base); abandon an open round. Returns the version."""
        row = self._db.execute(
            "SELECT c.weights, c.sha256, r.base_version FROM candidates c"
            " JOIN rounds r USING (round_id) WHERE round_id=?", (round_id,)
        ).fetchone()  # fmt: skip
        if row is None:
            raise KeyError(f"no held-back candidate of round {round_id} in {self.path}")
        done = self._db.execute("SELECT version FROM promotions WHERE round_id=?", (round_id,))
        if (promoted := done.fetchone()) is not None:
            raise KeyError(f"round {round_id}'s candidate is already version {promoted[0]}")
        with self._transaction():
            weights, sha, parent = weights_from_bytes(bytes(row[0])), str(row[1]), int(row[2])
            version, last, abandoned = self._add_newest(weights, parent, sha, now)
            self._db.execute("INSERT INTO promotions VALUES (?, ?, ?, ?, ?)",
                             (version, round_id, last, abandoned, now))  # fmt: skip
        return version

    def _add_newest(
        self, weights: Weights, parent: int, sha: str, now: float
    ) -> tuple[int, int, int | None]:
        """Inside a transaction: `weights` as the newest version, an open round abandoned.
        Returns the new version, the last round before it and the abandoned round (or None)."""
        record = self.latest_version()
        version = 0 if record is None else record.version + 1
        open_round = self.open_round_record()
        abandoned = None if open_round is None else open_round.round_id
        if abandoned is not None:
            self._db.execute(
                "UPDATE rounds SET status='closed', result_version=base_version,"
                " closed_unix=?, metrics=? WHERE round_id=?",
                (now, json.dumps({"round": abandoned, "status": "abandoned"}), abandoned),
            )
            self._db.execute("DELETE FROM strategy_state WHERE round_id=?", (abandoned,))
        last = self._db.execute("SELECT MAX(round_id) FROM rounds").fetchone()[0] or 0
        self.add_version(version, weights, parent, None, sha, now)
        return version, int(last), abandoned

    def last_rollback_round(self) -> int:
        """The last round closed before the newest rollback or promotion (0: neither): the
        operator chose that head, and the promotion bar restarts from it."""
        row = self._db.execute(
            "SELECT MAX(after_round) FROM (SELECT after_round FROM rollbacks"
            " UNION ALL SELECT after_round FROM promotions)"
        ).fetchone()
        return int(row[0] or 0)

    # devices
    def record_device(self, record: DeviceRecord) -> None:
        """Remember a device's latest status; health it did not report this time stays as
        last reported (last round and rejections are kept apart)."""
        self._db.execute(
            f"INSERT INTO devices ({_DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (device_id) DO UPDATE SET online=excluded.online,"
            " last_seen_unix=excluded.last_seen_unix, model_version=excluded.model_version,"
            + ",".join(f" {c}=COALESCE(excluded.{c}, {c})" for c in _HEALTH_COLUMNS),
            astuple(record)[:8],
        )

    def count_device_rejection(self, device_id: str, reason: str) -> None:
        self._db.execute(
            "INSERT INTO device_rejections VALUES (?, ?, 1)"
            " ON CONFLICT (device_id, reason) DO UPDATE SET count=count+1",
            (device_id, reason),
        )

    def devices(self) -> list[DeviceRecord]:
        """Every device heard of (by status, update or rejection), sorted by id."""
        rows = {r[0]: r for r in self._db.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices")}
        updates = dict(self._db.execute(
            "SELECT device_id, MAX(received_unix) FROM updates GROUP BY device_id"))  # fmt: skip
        last_rounds = dict(self._db.execute(
            "SELECT device_id, MAX(round_id) FROM updates GROUP BY device_id"))  # fmt: skip
        rejections: dict[str, dict[str, int]] = {}
        for device, reason, count in self._db.execute(
            "SELECT device_id, reason, count FROM device_rejections ORDER BY reason"
        ):
            rejections.setdefault(device, {})[reason] = int(count)
        records = []
        for device in sorted({*rows, *updates, *rejections}):
            row = rows.get(device) or (device, 0, 0.0, None, None, None, None, None)
            seen = max(float(row[2]), float(updates.get(device) or 0.0))
            version, disk, temperature, size, backlog = row[3:8]
            records.append(DeviceRecord(device, bool(row[1]), seen, version, disk, temperature,
                                        size, backlog, last_rounds.get(device),
                                        rejections.get(device, {})))  # fmt: skip
        return records

    def rejection_totals(self) -> dict[str, int]:
        """Refused updates by reason over every round (the open one included)."""
        rows = self._db.execute("SELECT reason, SUM(count) FROM rejections GROUP BY reason")
        return {str(reason): int(count) for reason, count in rows}

    def traffic(self, round_id: int) -> tuple[int, int]:
        row = self._db.execute(
            "SELECT bytes_in, bytes_out FROM traffic WHERE round_id=?", (round_id,)
        ).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))


def _round_record(row: tuple[Any, ...]) -> RoundRecord:
    metrics = json.loads(row[8]) if row[8] else None
    round_id, base, opened, deadline, quorum, status, result, closed = row[:8]
    return RoundRecord(round_id, base, opened, deadline, quorum, status, result, closed, metrics)
