"""SampleStore: WAL, labels (range, button, pseudo), retention, training selection, rounds."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.errors import StoreError
from edge_runtime.sample_store import (
    Prediction,
    RowInfo,
    SampleStore,
    StoreConfig,
    select_evictions,
)


def _window(value: float) -> np.ndarray:
    return np.full((4, 2), value, dtype=np.float32)  # (time, channels): 32 bytes


def _embedding(value: float) -> np.ndarray:
    return np.full(3, value, dtype=np.float32)  # 12 bytes


@pytest.fixture
def store(tmp_path: Path) -> SampleStore:
    with SampleStore(tmp_path / "device.sqlite") as opened:
        yield opened


def _fill(store: SampleStore, n: int, duration: float = 1.0) -> list[int]:
    """n consecutive windows [i, i + duration) with embeddings equal to i."""
    return [
        store.add_window(i, i + duration, window=_window(i), embedding=_embedding(i))
        for i in range(n)
    ]


def test_store_uses_wal_and_a_second_reader_sees_committed_rows(
    store: SampleStore, tmp_path: Path
) -> None:
    _fill(store, 3)
    assert store.journal_mode == "wal"
    reader = sqlite3.connect(tmp_path / "device.sqlite")
    try:
        assert reader.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 3
    finally:
        reader.close()


def test_label_range_labels_windows_by_midpoint(store: SampleStore) -> None:
    # Prepare: windows [0,1) .. [5,6), midpoints 0.5 .. 5.5
    _fill(store, 6)
    # Execute
    labelled = store.label_range(1.0, 3.6, label=2)
    X, y = store.labelled_embeddings()
    # Assert
    assert labelled == 3
    assert y.tolist() == [2, 2, 2]
    assert X[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert store.counts().by_source == {"user": 3}


def test_label_range_also_labels_windows_that_arrive_later(store: SampleStore) -> None:
    store.label_range(10.0, 20.0, label=1)
    store.add_window(12.0, 13.0, embedding=_embedding(1))
    store.add_window(30.0, 31.0, embedding=_embedding(2))
    assert store.labelled_embeddings()[1].tolist() == [1]


def test_button_event_labels_covering_windows_now_and_later(store: SampleStore) -> None:
    # Prepare: overlapping windows [0,2), [1,3), [2,4)
    for start in range(3):
        store.add_window(start, start + 2, embedding=_embedding(start))
    # Execute
    now = store.add_label_event(2.5, label=4)
    store.add_label_event(7.5, label=3)
    store.add_window(7.0, 8.0, embedding=_embedding(9))
    # Assert
    assert now == 2
    counts = store.counts()
    assert counts.by_source == {"button": 3}
    assert counts.by_label == {3: 1, 4: 2}


def test_pseudo_labels_are_off_by_default(store: SampleStore) -> None:
    store.add_window(0, 1, embedding=_embedding(0), prediction=Prediction(1, 0.99))
    assert store.counts().labelled == 0


def test_pseudo_labels_above_threshold_never_override_user_labels(tmp_path: Path) -> None:
    # Prepare
    config = StoreConfig(pseudo_label_threshold=0.9)
    with SampleStore(tmp_path / "s.sqlite", config) as store:
        store.label_range(5.0, 6.0, label=0)
        # Execute
        store.add_window(0, 1, embedding=_embedding(0), prediction=Prediction(1, 0.95))
        store.add_window(1, 2, embedding=_embedding(1), prediction=Prediction(2, 0.50))
        store.add_window(5, 6, embedding=_embedding(5), prediction=Prediction(2, 0.99))
        # Assert
        assert store.counts().by_source == {"pseudo": 1, "user": 1}
        assert store.labelled_embeddings(sources=["pseudo"])[1].tolist() == [1]
        assert store.labelled_embeddings(sources=["user"])[1].tolist() == [0]


def test_labelled_embeddings_limit_keeps_most_recent_in_order(store: SampleStore) -> None:
    _fill(store, 10)
    store.label_range(0, 100, label=1)
    X, y = store.labelled_embeddings(limit=3)
    assert X[:, 0].tolist() == [7.0, 8.0, 9.0]
    assert X.dtype == np.float32 and y.dtype == np.int64


def test_empty_store_gives_empty_training_set(store: SampleStore) -> None:
    X, y = store.labelled_embeddings()
    assert len(X) == len(y) == 0


def test_labelled_windows_round_trip(store: SampleStore) -> None:
    _fill(store, 3)
    store.label_range(1.0, 1.9, label=5)
    windows, labels, ids = store.labelled_windows()
    assert windows.shape == (1, 4, 2)
    np.testing.assert_array_equal(windows[0], _window(1))
    assert labels.tolist() == [5] and len(ids) == 1


def test_select_evictions_prefers_oldest_unlabelled() -> None:
    # Prepare
    rows = [
        RowInfo(1, 10, True),
        RowInfo(2, 10, False),
        RowInfo(3, 10, True),
        RowInfo(4, 10, False),
    ]
    # Execute / Assert
    assert select_evictions(rows, max_rows=3, max_bytes=1000) == [2]
    assert select_evictions(rows, max_rows=1, max_bytes=1000) == [2, 4, 1]
    assert select_evictions(rows, max_rows=10, max_bytes=25) == [2, 4]
    assert select_evictions(rows, max_rows=10, max_bytes=1000) == []


def test_row_cap_evicts_unlabelled_first(tmp_path: Path) -> None:
    config = StoreConfig(max_rows=4, evict_to_fraction=1.0)
    with SampleStore(tmp_path / "s.sqlite", config) as store:
        store.label_range(0.0, 2.0, label=1)  # windows 0 and 1 will be labelled
        _fill(store, 8)
        counts = store.counts()
        assert counts.rows == 4 and counts.labelled == 2
        assert store.labelled_embeddings()[0][:, 0].tolist() == [0.0, 1.0]


def test_byte_cap_is_enforced(tmp_path: Path) -> None:
    # each row: 32 window bytes + 12 embedding bytes = 44
    config = StoreConfig(max_bytes=100, evict_to_fraction=1.0)
    with SampleStore(tmp_path / "s.sqlite", config) as store:
        _fill(store, 5)
        counts = store.counts()
        assert counts.rows == 2 and counts.bytes == 88


def test_eviction_goes_down_to_low_water_and_totals_stay_exact(tmp_path: Path) -> None:
    # Prepare
    config = StoreConfig(max_rows=10, evict_to_fraction=0.5)
    with SampleStore(tmp_path / "s.sqlite", config) as store:
        # Execute
        _fill(store, 11)  # the 11th insert trips the cap: down to 5
        after_trip = store.counts().rows
        _fill(store, 3)
        # Assert
        assert after_trip == 5
        counts = store.counts()
        assert counts.rows == 8 and counts.bytes == 8 * 44
    reader = sqlite3.connect(tmp_path / "s.sqlite")
    try:
        actual = reader.execute("SELECT COUNT(*), SUM(nbytes) FROM samples").fetchone()
    finally:
        reader.close()
    assert actual == (8, 8 * 44)


def test_invalid_labels_and_empty_rows_are_rejected(store: SampleStore) -> None:
    with pytest.raises(StoreError, match="source"):
        store.label_range(0, 1, label=1, source="guess")
    with pytest.raises(StoreError, match="before"):
        store.label_range(2, 1, label=1)
    with pytest.raises(StoreError, match="window or an embedding"):
        store.add_window(0, 1)


def test_forgotten_rounds_are_unsent_and_sequences_keep_growing(tmp_path: Path) -> None:
    # Prepare: rounds 1-3 sent and acked under an earlier aggregator state
    with SampleStore(tmp_path / "s.sqlite") as store:
        for round_id in (1, 2, 3):
            store.record_round_sent(round_id, round_id - 1, store.next_sequence())
            store.record_round_outcome(round_id, "accepted")
        # Execute: a rejoin from round 2 on
        store.forget_rounds_from(2)
    # Assert (after a reopen, as a restarted device reads it)
    with SampleStore(tmp_path / "s.sqlite") as reopened:
        assert reopened.sent_round_ids() == [1]
        assert reopened.round_outcomes() == {1: "accepted"}
        assert reopened.next_sequence() == 4  # never reused: the aggregator refuses replays


def test_round_bookkeeping_survives_reopen(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "s.sqlite"
    with SampleStore(path, clock=lambda: 1234.5) as store:
        assert store.next_sequence() == 1
        assert not store.was_round_sent(7)
        store.record_round_sent(7, base_version=3, sequence=store.next_sequence(), num_examples=40)
        store.set_meta("last_version", "3")
    # Execute
    with SampleStore(path) as reopened:
        # Assert
        assert reopened.was_round_sent(7)
        assert not reopened.was_round_sent(8)
        assert reopened.next_sequence() == 2
        assert reopened.get_meta("last_version") == "3"
        assert reopened.get_meta("absent", "x") == "x"
        (record,) = reopened.recent_rounds()
        assert (record.round_id, record.base_version, record.sequence) == (7, 3, 1)
        assert record.sent and record.sent_at == 1234.5 and record.num_examples == 40


def test_corrupt_store_file_is_store_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        SampleStore(path)


_LABELLER = """
import sys
from edge_runtime.sample_store import SampleStore
with SampleStore(sys.argv[1]) as store:
    print("ready", flush=True)
    for i in range(200):
        store.label_range(float(i), i + 0.99, label=i % 3)
print("done", flush=True)
"""


def test_labelling_from_another_process_while_the_device_writes(tmp_path: Path) -> None:
    # Prepare: the device loop's store and an `iomt edge label` process on the same file
    path = tmp_path / "s.sqlite"
    with SampleStore(path) as store:
        labeller = subprocess.Popen(
            [sys.executable, "-c", _LABELLER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert labeller.stdout is not None and labeller.stdout.readline().strip() == "ready"
        # Execute
        for i in range(200):
            store.add_window(float(i), i + 1.0, embedding=_embedding(i))
        finished = labeller.stdout.readline().strip()
        labeller.wait(timeout=60)
        # Assert: every window is labelled, whichever side ran first
        assert finished == "done" and labeller.returncode == 0
        counts = store.counts()
        assert counts.rows == 200 and counts.labelled == 200
        X, y = store.labelled_embeddings()
        assert y.tolist() == [int(x) % 3 for x in X[:, 0]]


def test_labels_the_model_has_no_class_for_are_never_trained_on(store: SampleStore) -> None:
    # Prepare: an older store where one window got label 7 on a 3-class model
    _fill(store, 4)
    store.label_range(0, 2.9, label=1)
    store.label_range(3, 3.9, label=7)

    # Execute
    before = store.labelled_embeddings()[1].tolist()
    store.set_class_count(3)
    after = store.labelled_embeddings()[1].tolist()

    # Assert
    assert before == [1, 1, 1, 7] and after == [1, 1, 1]
