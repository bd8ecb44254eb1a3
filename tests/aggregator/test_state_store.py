"""The aggregator's SQLite state: atomic accept, resume after a hard kill, no double counting."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from aggregator.state_store import (
    AcceptedUpdate,
    StateStore,
    arrays_from_bytes,
    arrays_to_bytes,
    weights_from_bytes,
    weights_to_bytes,
)
from aggregator.strategies import make_strategy

WEIGHTS = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32)]


def _update(device: str, sequence: int, round_id: int = 1) -> AcceptedUpdate:
    return AcceptedUpdate(round_id, device, sequence, 10, 100, f"sha-{device}-{sequence}")


def test_weights_round_trip_through_npz_bytes_without_pickle() -> None:
    # Execute
    restored = weights_from_bytes(weights_to_bytes(WEIGHTS))

    # Assert
    assert [w.dtype for w in restored] == [np.float32, np.float32]
    for got, want in zip(restored, WEIGHTS, strict=True):
        np.testing.assert_array_equal(got, want)


def test_object_arrays_are_refused_both_ways() -> None:
    # Prepare
    buffer = io.BytesIO()
    np.savez(buffer, bad=np.array([{"a": 1}], dtype=object))

    # Execute / Assert
    with pytest.raises(ValueError):
        arrays_from_bytes(buffer.getvalue())
    with pytest.raises(ValueError):
        arrays_to_bytes({"bad": np.array([{"a": 1}], dtype=object)})


def test_store_uses_wal_and_full_sync(tmp_path: Path) -> None:
    with StateStore(tmp_path / "agg.sqlite") as store:
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_same_device_twice_in_a_round_is_refused_by_the_schema(tmp_path: Path) -> None:
    # Prepare
    with StateStore(tmp_path / "agg.sqlite") as store:
        store.open_round(1, 0, 0.0, 10.0, 2, {"x": np.zeros(1)})
        store.accept_update(_update("a", 1), {"x": np.ones(1)}, 1.0)

        # Execute / Assert
        with pytest.raises(sqlite3.IntegrityError):
            store.accept_update(_update("a", 2), {"x": np.full(1, 2.0)}, 2.0)
        np.testing.assert_array_equal(store.strategy_state(1)["x"], np.ones(1))
        assert [u.sequence for u in store.accepted_updates(1)] == [1]


def test_close_round_stores_version_and_drops_round_state(tmp_path: Path) -> None:
    # Prepare
    with StateStore(tmp_path / "agg.sqlite") as store:
        store.add_version(0, WEIGHTS, None, None, "sha0")
        store.open_round(1, 0, 0.0, 10.0, 1, {})

        # Execute
        store.close_round(1, 1, WEIGHTS, "sha1", {"participants": 1}, 5.0, {"m": np.ones(2)})

        # Assert
        assert store.open_round_record() is None
        assert [v.version for v in store.versions()] == [0, 1]
        assert store.versions()[1].parent == 0
        assert store.rounds()[0].metrics == {"participants": 1}
        np.testing.assert_array_equal(store.strategy_carry()["m"], np.ones(2))  # type: ignore[index]


def test_counters_accumulate_per_round(tmp_path: Path) -> None:
    with StateStore(tmp_path / "agg.sqlite") as store:
        store.count_rejection(1, "stale")
        store.count_rejection(1, "stale")
        store.count_rejection(1, "malformed")
        store.add_traffic(1, bytes_in=10)
        store.add_traffic(1, bytes_in=5, bytes_out=7)
        assert store.rejections(1) == {"malformed": 1, "stale": 2}
        assert store.traffic(1) == (15, 7)


def test_last_sequence_spans_rounds(tmp_path: Path) -> None:
    with StateStore(tmp_path / "agg.sqlite") as store:
        store.open_round(1, 0, 0.0, 1.0, 1, {})
        store.accept_update(_update("a", 3, round_id=1), {}, 0.0)
        assert store.last_sequence("a") == 3
        assert store.last_sequence("b") is None


_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from aggregator.state_store import AcceptedUpdate, StateStore
    from aggregator.strategies import make_strategy

    store = StateStore(sys.argv[1])
    strategy = make_strategy("fedavg")
    strategy.begin_round([np.zeros(3, np.float32)])
    store.open_round(1, 0, 0.0, 99.0, 2, strategy.state_to_arrays())
    for i, device in enumerate(["a", "b"]):
        strategy.accumulate([np.full(3, i + 1, np.float32)], 10 * (i + 1), device)
        row = AcceptedUpdate(1, device, 1, 10 * (i + 1), 50, device)
        store.accept_update(row, strategy.state_to_arrays(), 1.0)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_state_survives_sigkill_after_commit(tmp_path: Path) -> None:
    # Prepare
    state = tmp_path / "agg.sqlite"

    # Execute: a writer process commits two updates and is killed with SIGKILL
    result = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(state)], check=False)
    assert result.returncode == -9

    # Assert: resume the strategy from the store and finish the round
    with StateStore(state) as store:
        record = store.open_round_record()
        assert record is not None and record.round_id == 1
        strategy = make_strategy("fedavg")
        strategy.begin_round([np.zeros(3, np.float32)])
        strategy.state_from_arrays(store.strategy_state(1))
        new = strategy.finish_round([np.zeros(3, np.float32)])
        assert [u.device_id for u in store.accepted_updates(1)] == ["a", "b"]
    np.testing.assert_allclose(new[0], np.full(3, (1 * 10 + 2 * 20) / 30), rtol=1e-6)
