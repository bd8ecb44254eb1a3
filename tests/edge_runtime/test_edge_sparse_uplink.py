"""Top-k with error feedback on the device and its residual in the sample store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.residual_store import PendingResidual, model_key
from edge_runtime.sample_store import SampleStore
from edge_runtime.sparse_uplink import sparsify_delta
from fleet_protocol.update_encoding import UpdateEncoding

TOPK_10 = UpdateEncoding("int8", 0.1)
DENSE = UpdateEncoding("int8")


def _delta(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(10, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32)]


def test_topk_sends_a_tenth_and_keeps_the_rest_as_residual() -> None:
    # Prepare
    delta = _delta(0)
    # Execute
    result = sparsify_delta(delta, TOPK_10, None)
    # Assert
    assert result.changed and result.residual is not None
    assert [int(np.count_nonzero(s)) for s in result.sent] == [5, 1]
    for sent, left, whole in zip(result.sent, result.residual, delta, strict=True):
        np.testing.assert_allclose(sent + left, whole)


def test_the_residual_is_added_to_the_next_delta() -> None:
    # Prepare
    first = sparsify_delta(_delta(0), TOPK_10, None)
    delta = _delta(1)
    # Execute
    second = sparsify_delta(delta, TOPK_10, first.residual)
    # Assert: what was sent over both rounds plus what is left is both deltas
    assert first.residual is not None and second.residual is not None
    for i, whole in enumerate(_delta(0)):
        total = first.sent[i] + second.sent[i] + second.residual[i]
        np.testing.assert_allclose(total, whole + delta[i], atol=1e-6)


def test_a_dense_round_flushes_the_residual_and_a_fresh_one_changes_nothing() -> None:
    # Prepare
    first = sparsify_delta(_delta(0), TOPK_10, None)
    # Execute
    flushed = sparsify_delta(_delta(1), DENSE, first.residual)
    untouched = sparsify_delta(_delta(1), DENSE, None)
    # Assert
    assert first.residual is not None
    assert flushed.changed and flushed.residual is None
    np.testing.assert_allclose(flushed.sent[0], _delta(1)[0] + first.residual[0])
    assert not untouched.changed and untouched.sent is not None


def test_a_residual_of_another_shape_is_dropped() -> None:
    # Prepare
    stale = [np.ones((3, 3), np.float32)]
    # Execute
    result = sparsify_delta(_delta(0), TOPK_10, stale)
    # Assert
    assert result.residual is not None
    for sent, left, whole in zip(result.sent, result.residual, _delta(0), strict=True):
        np.testing.assert_allclose(sent + left, whole)


def test_the_residual_is_committed_with_the_sent_round_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    # Prepare
    path = tmp_path / "device.sqlite"
    key = model_key("fleet", [(10, 5), (5,)])
    residual = sparsify_delta(_delta(0), TOPK_10, None).residual
    # Execute
    with SampleStore(path) as store:
        store.record_round_sent(4, 3, 1, 20, residual=PendingResidual(key, residual))
    with SampleStore(path) as store:
        restored = store.residual(key)
        other = store.residual(model_key("fleet", [(2, 2)]))
    # Assert
    assert restored is not None and residual is not None and other is None
    for ours, theirs in zip(restored, residual, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_a_failed_round_record_leaves_the_old_residual(tmp_path: Path) -> None:
    # Prepare
    key = model_key("fleet", [(10, 5), (5,)])
    old = sparsify_delta(_delta(0), TOPK_10, None).residual
    new = sparsify_delta(_delta(1), TOPK_10, old).residual
    with SampleStore(tmp_path / "device.sqlite") as store:
        store.record_round_sent(4, 3, 1, 20, residual=PendingResidual(key, old))
        # Execute: the round's row cannot be written (a round id that is no integer)
        with pytest.raises(sqlite3.IntegrityError):
            store.record_round_sent("five", 4, 2, 20, residual=PendingResidual(key, new))  # type: ignore[arg-type]
        kept = store.residual(key)
    # Assert
    assert kept is not None and old is not None
    np.testing.assert_array_equal(kept[0], old[0])


def test_a_fully_sent_residual_is_cleared(tmp_path: Path) -> None:
    # Prepare
    key = model_key("fleet", [(10, 5), (5,)])
    with SampleStore(tmp_path / "device.sqlite") as store:
        store.record_round_sent(1, 0, 1, residual=PendingResidual(key, _delta(0)))
        # Execute
        store.record_round_sent(2, 1, 2, residual=PendingResidual(key, None))
        # Assert
        assert store.residual(key) is None


def test_a_store_of_schema_version_2_gains_the_residuals_table(tmp_path: Path) -> None:
    # Prepare: a store as the previous release left it
    path = tmp_path / "device.sqlite"
    with SampleStore(path) as store:
        store.record_round_sent(7, 6, 1)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE residuals")
        db.execute("PRAGMA user_version = 2")
    # Execute
    with SampleStore(path) as store:
        rounds = store.sent_round_ids()
        store.record_round_sent(8, 7, 2, residual=PendingResidual("k", _delta(0)))
        residual = store.residual("k")
    # Assert
    with sqlite3.connect(path) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
    assert rounds == [7] and residual is not None and version == 3
