"""The device's local sample store: windows or embeddings, labels, and round bookkeeping.

SQLite in WAL mode so a reader (`iomt edge status`) never blocks the writer. Raw windows are
stored here and never leave the device. Pure decisions (which rows to evict) live in
`select_evictions`; this module's class only runs SQL around them.

Labels arrive three ways: a time range (`iomt edge label`, source "user"), a button event at
one instant (serial bridge, source "button"), or a pseudo-label from the model's own
prediction when its confidence reaches `StoreConfig.pseudo_label_threshold` (off by default).
Range and event labels are remembered, so a window that completes after its label arrived
still gets it. A pseudo-label never overwrites a user or button label.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edge_runtime.errors import StoreError
from edge_runtime.residual_store import PendingResidual, read_residual, write_residual
from edge_runtime.sample_store_schema import MIGRATIONS
from fleet_protocol.sqlite_migrations import SchemaVersionError, migrate
from fleet_protocol.sqlite_transaction import ImmediateTransaction
from fleet_protocol.types import Weights

LABEL_SOURCES = ("user", "button", "pseudo")
CLASS_COUNT_META = "num_classes"

_OUTCOME_PREFIX = "ack:"  # meta key of how a sent round ended


@dataclass(frozen=True)
class StoreConfig:
    """Retention caps (oldest unlabelled rows go first) and the pseudo-label threshold.

    The caps are never exceeded after an insert. When one is hit, rows are evicted down to
    `evict_to_fraction` of the caps, so the eviction scan runs once per many inserts.
    """

    max_rows: int = 20_000
    max_bytes: int = 64 * 1024 * 1024
    pseudo_label_threshold: float | None = None
    evict_to_fraction: float = 0.9


@dataclass(frozen=True)
class RowInfo:
    """What eviction needs to know about one stored row."""

    row_id: int
    nbytes: int
    labelled: bool


@dataclass(frozen=True)
class StoreCounts:
    """What `iomt edge status` shows about the store."""

    rows: int
    labelled: int
    bytes: int
    by_source: dict[str, int]
    by_label: dict[int, int]


@dataclass(frozen=True)
class RoundRecord:
    """One federated round as this device saw it."""

    round_id: int
    base_version: int
    sequence: int
    sent: bool
    sent_at: float | None
    num_examples: int | None


@dataclass(frozen=True)
class Prediction:
    """The model's guess for a window, used for pseudo-labels."""

    label: int
    confidence: float


def select_evictions(rows: Sequence[RowInfo], max_rows: int, max_bytes: int) -> list[int]:
    """Ids to delete so at most max_rows / max_bytes remain; `rows` is oldest first.

    Unlabelled rows go first (oldest first), then labelled rows (oldest first).
    """
    excess_rows = max(len(rows) - max_rows, 0)
    excess_bytes = max(sum(r.nbytes for r in rows) - max_bytes, 0)
    ordered = [r for r in rows if not r.labelled] + [r for r in rows if r.labelled]
    evicted: list[int] = []
    for row in ordered:
        if excess_rows <= 0 and excess_bytes <= 0:
            break
        evicted.append(row.row_id)
        excess_rows -= 1
        excess_bytes -= row.nbytes
    return evicted


def should_pseudo_label(prediction: Prediction | None, threshold: float | None) -> bool:
    return prediction is not None and threshold is not None and prediction.confidence >= threshold


class SampleStore:
    """SQLite-backed store; one connection, used from one thread at a time."""

    def __init__(
        self,
        path: str | Path,
        config: StoreConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.config = config or StoreConfig()
        self._clock = clock
        try:
            self._db = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            migrate(self._db, MIGRATIONS, "sample store", str(self.path))
        except SchemaVersionError as exc:
            self._db.close()
            raise StoreError(str(exc)) from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open sample store {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    # -- samples ---------------------------------------------------------------------------

    def add_window(
        self,
        start_ts: float,
        end_ts: float,
        window: NDArray[np.floating] | None = None,
        embedding: NDArray[np.floating] | None = None,
        prediction: Prediction | None = None,
    ) -> int:
        """Store one window and/or its embedding; apply pending labels; enforce retention."""
        if window is None and embedding is None:
            raise StoreError("add_window needs a window or an embedding")
        window_blob, shape = _to_blob(window)
        embedding_blob, _ = _to_blob(embedding)
        nbytes = len(window_blob or b"") + len(embedding_blob or b"")
        with self._transaction():  # read the label marks and insert under one write lock
            label, source, confidence = self._initial_label(start_ts, end_ts, prediction)
            cursor = self._db.execute(
                "INSERT INTO samples (start_ts, end_ts, window, window_shape, embedding, label,"
                " label_source, confidence, predicted, nbytes, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    start_ts,
                    end_ts,
                    window_blob,
                    shape,
                    embedding_blob,
                    label,
                    source,
                    confidence,
                    prediction.label if prediction else None,
                    nbytes,
                    self._clock(),
                ),
            )
            row_id = int(cursor.lastrowid or 0)
            self._enforce_retention()
        return row_id

    def set_embedding(self, row_id: int, embedding: NDArray[np.floating]) -> None:
        """Attach (or replace) the embedding of a stored window, e.g. after a new backbone."""
        blob, _ = _to_blob(embedding)
        with self._transaction():
            self._db.execute(
                "UPDATE samples SET embedding = ?, nbytes = COALESCE(LENGTH(window), 0) + ?"
                " WHERE id = ?",
                (blob, len(blob or b""), row_id),
            )

    def label_range(self, t0: float, t1: float, label: int, source: str = "user") -> int:
        """Label every window whose midpoint lies in [t0, t1], now and when it arrives later."""
        _check_label(label, source)
        if t1 < t0:
            raise StoreError(f"label range end {t1} is before its start {t0}")
        with self._transaction():
            self._db.execute(
                "INSERT INTO label_marks (t0, t1, label, source, is_event) VALUES (?, ?, ?, ?, 0)",
                (t0, t1, label, source),
            )
            cursor = self._db.execute(
                "UPDATE samples SET label = ?, label_source = ?"
                " WHERE end_ts >= ? AND (start_ts + end_ts) / 2.0 BETWEEN ? AND ?",
                (label, source, t0, t0, t1),
            )
        return cursor.rowcount

    def add_label_event(self, ts: float, label: int, source: str = "button") -> int:
        """Label the window(s) covering instant `ts` (a button press), now or when they arrive."""
        _check_label(label, source)
        with self._transaction():
            self._db.execute(
                "INSERT INTO label_marks (t0, t1, label, source, is_event) VALUES (?, ?, ?, ?, 1)",
                (ts, ts, label, source),
            )
            cursor = self._db.execute(
                "UPDATE samples SET label = ?, label_source = ?"
                " WHERE end_ts >= ? AND start_ts <= ?",
                (label, source, ts, ts),
            )
        return cursor.rowcount

    def labelled_embeddings(
        self, limit: int | None = None, sources: Iterable[str] = LABEL_SOURCES
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The most recent labelled embeddings, oldest first: X [N, D] float32, y [N] int64.

        Labels the installed model has no class for (`set_class_count`) are left out, so one
        bad label in an older store cannot make every round fail.
        """
        chosen = tuple(sources)
        marks = ",".join("?" * len(chosen))
        classes = int(self.get_meta(CLASS_COUNT_META) or 2**62)
        rows = self._db.execute(
            "SELECT embedding, label FROM samples WHERE label IS NOT NULL AND embedding IS NOT NULL"
            f" AND label_source IN ({marks}) AND label >= 0 AND label < ? ORDER BY id DESC LIMIT ?",
            (*chosen, classes, -1 if limit is None else limit),
        ).fetchall()[::-1]
        if not rows:
            return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
        X = np.stack([np.frombuffer(blob, dtype=np.float32) for blob, _ in rows])
        return X, np.array([label for _, label in rows], dtype=np.int64)

    def labelled_windows(
        self, limit: int | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.int64], list[int]]:
        """The most recent labelled raw windows [N, T, C], labels [N] and row ids, oldest first."""
        rows = self._db.execute(
            "SELECT id, window, window_shape, label FROM samples"
            " WHERE label IS NOT NULL AND window IS NOT NULL ORDER BY id DESC LIMIT ?",
            (-1 if limit is None else limit,),
        ).fetchall()[::-1]
        if not rows:
            return np.zeros((0, 0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64), []
        windows = [_from_blob(blob, shape) for _, blob, shape, _ in rows]
        return (
            np.stack(windows),
            np.array([r[3] for r in rows], dtype=np.int64),
            [r[0] for r in rows],
        )

    def counts(self) -> StoreCounts:
        rows, nbytes = self._db.execute("SELECT rows, bytes FROM totals").fetchone()
        labelled = self._db.execute(
            "SELECT COUNT(*) FROM samples WHERE label IS NOT NULL"
        ).fetchone()[0]
        by_source = dict(
            self._db.execute(
                "SELECT label_source, COUNT(*) FROM samples WHERE label IS NOT NULL"
                " GROUP BY label_source"
            ).fetchall()
        )
        by_label = dict(
            self._db.execute(
                "SELECT label, COUNT(*) FROM samples WHERE label IS NOT NULL GROUP BY label"
            ).fetchall()
        )
        return StoreCounts(int(rows), int(labelled), int(nbytes), by_source, by_label)

    # -- federated rounds and metadata -------------------------------------------------------

    def record_round_sent(
        self,
        round_id: int,
        base_version: int,
        sequence: int,
        num_examples: int | None = None,
        sent_at: float | None = None,
        residual: PendingResidual | None = None,
    ) -> None:
        """Remember that this device sent its update for `round_id`, with the top-k residual
        it leaves (one transaction: both survive a crash, or neither)."""
        with self._transaction():
            if residual is not None:
                write_residual(self._db, residual, round_id, self._clock())
            self._db.execute(
                "INSERT INTO rounds (round_id, base_version, sequence, sent, sent_at, num_examples)"
                " VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT(round_id) DO UPDATE SET"
                " base_version = excluded.base_version, sequence = excluded.sequence, sent = 1,"
                " sent_at = excluded.sent_at, num_examples = excluded.num_examples",
                (
                    round_id,
                    base_version,
                    sequence,
                    self._clock() if sent_at is None else sent_at,
                    num_examples,
                ),
            )

    def residual(self, model_key: str) -> Weights | None:
        """The error-feedback residual committed with the last sent round of a model."""
        return read_residual(self._db, model_key)

    def was_round_sent(self, round_id: int) -> bool:
        row = self._db.execute("SELECT sent FROM rounds WHERE round_id = ?", (round_id,)).fetchone()
        return bool(row and row[0])

    def sent_round_ids(self) -> list[int]:
        """Every round this device recorded as sent, oldest first."""
        rows = self._db.execute("SELECT round_id FROM rounds WHERE sent ORDER BY round_id")
        return [int(r[0]) for r in rows]

    def record_round_outcome(self, round_id: int, outcome: str) -> None:
        """How a sent round ended: "accepted", a refusal reason, "superseded", "secure"."""
        self.set_meta(f"{_OUTCOME_PREFIX}{round_id}", outcome)

    def round_outcome(self, round_id: int) -> str | None:
        return self.get_meta(f"{_OUTCOME_PREFIX}{round_id}")

    def round_outcomes(self) -> dict[int, str]:
        """Every recorded outcome by round id."""
        rows = self._db.execute(
            "SELECT key, value FROM meta WHERE key LIKE ?", (f"{_OUTCOME_PREFIX}%",)
        ).fetchall()
        prefix = len(_OUTCOME_PREFIX)
        return {int(k[prefix:]): str(v) for k, v in rows if k[prefix:].isdigit()}

    def forget_rounds_from(self, round_id: int) -> None:
        """Rounds from `round_id` on were another aggregator state's (a rejoin): no longer
        sent, outcomes dropped. Their rows stay, so sequence numbers keep growing."""
        with self._transaction():
            self._db.execute("UPDATE rounds SET sent = 0 WHERE round_id >= ?", (round_id,))
            outcomes = [f"{_OUTCOME_PREFIX}{r}" for r in self.round_outcomes() if r >= round_id]
            self._db.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k in outcomes])

    def next_sequence(self) -> int:
        """1 + the highest sequence number ever recorded (1 on a fresh store)."""
        row = self._db.execute("SELECT MAX(sequence) FROM rounds").fetchone()
        return 1 if row[0] is None else int(row[0]) + 1

    def recent_rounds(self, limit: int = 10) -> list[RoundRecord]:
        """Newest first, for `iomt edge status`."""
        rows = self._db.execute(
            "SELECT round_id, base_version, sequence, sent, sent_at, num_examples FROM rounds"
            " ORDER BY sequence DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [RoundRecord(int(r[0]), int(r[1]), int(r[2]), bool(r[3]), r[4], r[5]) for r in rows]

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def set_class_count(self, num_classes: int) -> None:
        """How many classes the installed model has: labels beyond are never trained on."""
        self.set_meta(CLASS_COUNT_META, str(int(num_classes)))

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    # -- internals -----------------------------------------------------------------------------

    def _transaction(self) -> ImmediateTransaction:
        return ImmediateTransaction(self._db)

    def _initial_label(
        self, start_ts: float, end_ts: float, prediction: Prediction | None
    ) -> tuple[int | None, str | None, float | None]:
        """A remembered user/button label wins; else a confident pseudo-label; else none."""
        confidence = prediction.confidence if prediction else None
        mark = self._db.execute(
            "SELECT label, source FROM label_marks WHERE t1 >= ? AND ("
            " (is_event = 0 AND (? + ?) / 2.0 BETWEEN t0 AND t1)"
            " OR (is_event = 1 AND t0 BETWEEN ? AND ?)) ORDER BY id DESC LIMIT 1",
            (start_ts, start_ts, end_ts, start_ts, end_ts),
        ).fetchone()
        if mark is not None:
            return int(mark[0]), str(mark[1]), confidence
        if should_pseudo_label(prediction, self.config.pseudo_label_threshold):
            assert prediction is not None
            return prediction.label, "pseudo", confidence
        return None, None, confidence

    def _enforce_retention(self) -> None:
        rows, nbytes = self._db.execute("SELECT rows, bytes FROM totals").fetchone()
        if rows <= self.config.max_rows and nbytes <= self.config.max_bytes:
            return
        infos = [
            RowInfo(int(r[0]), int(r[1]), r[2] is not None)
            for r in self._db.execute("SELECT id, nbytes, label FROM samples ORDER BY id")
        ]
        fraction = self.config.evict_to_fraction
        doomed = select_evictions(
            infos, int(self.config.max_rows * fraction), int(self.config.max_bytes * fraction)
        )
        self._db.executemany("DELETE FROM samples WHERE id = ?", [(i,) for i in doomed])
        self._db.execute("DELETE FROM label_marks WHERE t1 < (SELECT MIN(start_ts) FROM samples)")


def _check_label(label: int, source: str) -> None:
    if source not in LABEL_SOURCES:
        raise StoreError(f"label source {source!r} is not one of {', '.join(LABEL_SOURCES)}")
    if int(label) < 0:
        raise StoreError(f"label {label} must be a class index >= 0")


def _to_blob(values: NDArray[np.floating] | None) -> tuple[bytes | None, str | None]:
    if values is None:
        return None, None
    array = np.ascontiguousarray(values, dtype=np.float32)
    return array.tobytes(), ",".join(str(d) for d in array.shape)


def _from_blob(blob: bytes, shape: str) -> NDArray[np.float32]:
    dims = tuple(int(d) for d in shape.split(",")) if shape else ()
    return np.frombuffer(blob, dtype=np.float32).reshape(dims)
