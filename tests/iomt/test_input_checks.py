"""Bad input refused at the door: one line, non-zero exit, nothing written (in-process)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from bench.synthetic_bundle import write_synthetic_bundle
from edge_runtime.sample_store import SampleStore
from iomt.cli import main
from iomt.environment import Environment


def _run(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, Environment(stdout=out, stderr=err, interactive=False))
    return code, err.getvalue()


def _dataset(path: Path, labels: list[int], windows: int) -> Path:
    np.savez(path, X=np.zeros((windows, 100, 6), np.float32), y=np.array(labels, np.int64),
             subject=np.zeros(len(labels), np.int64), sample_rate_hz=np.float64(50.0))  # fmt: skip
    return path


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_synthetic_bundle(tmp_path / "bundle")  # 7 classes


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    directory.mkdir()
    return directory


def _aggregator(bundle: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["aggregator", "--broker", "mqtt://127.0.0.1:9", "--fleet", "f", "--bundle",
            str(bundle), "--state", str(run_dir / "agg.sqlite"), *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--deadline", "inf"], "--deadline must be a finite number"),
        (["--learning-rate", "nan"], "--learning-rate must be a finite number"),
        (["--min-clients", "-1"], "--min-clients must be > 0"),
        (["--momentum", "1.5"], "--momentum must be < 1"),
        (["--fleet", "#"], "fleet"),
        (["--metrics-out", "/nonexistent/dir/m.jsonl"], "no directory"),
        (["--codec", "topk:7"], "density"),
        (["--codec", "int4"], "unknown codec"),
        (["--max-epsilon", "8"], "--max-epsilon needs --dp-noise-multiplier > 0"),
        (["--dp-noise-multiplier", "1", "--max-epsilon", "0"], "--max-epsilon must be > 0"),
        (["--dp-noise-multiplier", "1", "--dp-sampling-rate", "0.2"], "--dp-fleet-size"),
        (
            ["--dp-noise-multiplier", "4", "--dp-clip-quantile", "0.9", "--dp-bit-noise", "1"],
            "2 * sigma_b > z",
        ),
        (["--dp-noise-multiplier", "1", "--dp-clip-quantile", "1.5"], "quantile must be in"),
    ],
)
def test_aggregator_refuses_bad_numbers_ids_and_outputs_before_writing(
    bundle: Path, run_dir: Path, extra: list[str], says: str
) -> None:
    code, err = _run(_aggregator(bundle, run_dir, *extra))
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1
    assert list(run_dir.iterdir()) == []


def test_aggregator_refuses_a_holdout_with_fewer_labels_than_windows_at_start(
    bundle: Path, run_dir: Path, tmp_path: Path
) -> None:
    short = _dataset(tmp_path / "short.npz", [0, 1], windows=3)
    foreign = _dataset(tmp_path / "foreign.npz", [0, 9], windows=2)
    for holdout, says in ((short, "2 labels for 3 windows"), (foreign, "outside 0..6")):
        code, err = _run(_aggregator(bundle, run_dir, "--holdout", str(holdout)))
        assert code == 2 and says in err
    assert list(run_dir.iterdir()) == []


def test_edge_refuses_a_bad_id_or_out_of_range_replay_labels_and_writes_nothing(
    bundle: Path, run_dir: Path, tmp_path: Path
) -> None:
    replay = _dataset(tmp_path / "replay.npz", [0, 7], windows=2)
    common = ["edge", "--broker", "mqtt://127.0.0.1:9", "--fleet", "f", "--bundle", str(bundle),
              "--store", str(run_dir / "d.sqlite")]  # fmt: skip
    bad_id = _run([*common, "--device-id", "#"])
    bad_labels = _run([*common, "--device-id", "d1", "--replay", str(replay)])
    assert bad_id[0] == 2 and "device id" in bad_id[1]
    assert bad_labels[0] != 0 and "outside 0..6" in bad_labels[1]
    assert list(run_dir.iterdir()) == []


def test_edge_label_refuses_a_class_index_the_model_does_not_have(tmp_path: Path) -> None:
    store_path = tmp_path / "d.sqlite"
    with SampleStore(store_path) as store:
        store.set_meta("labels", json.dumps(["walk", "run", "sit"]))
    code, err = _run(["edge", "label", "--store", str(store_path), "--from", "0", "--to", "9",
                      "--label", "7"])  # fmt: skip
    assert code == 2 and "unknown label '7'" in err


def test_train_and_convert_refuse_before_any_work(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "d.npz", [0], windows=1)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    train = _run(["train", "--data", str(data), "--arch", "lstm-fcn", "--out",
                  str(tmp_path / "out"), "--learning-rate", "nan"])  # fmt: skip
    convert = _run(["convert", str(tmp_path / "run"), "--out", str(taken)])
    assert train[0] == 2 and "--learning-rate must be a finite number" in train[1]
    assert not (tmp_path / "out").exists()
    assert convert[0] == 2 and "not a bundle" in convert[1]
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]
