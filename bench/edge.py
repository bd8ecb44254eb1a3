"""Edge runtime cost beside TensorFlow doing the same work, and personalisation per subject.

    python -m bench.edge --bundle bundles/NAME --data data.npz [--run runs/NAME]

Each workload runs in a fresh child process so its peak RSS and start-up are its own:
  * edge: LiteRT backbone (`edge_runtime.interpreter`), sample store, numpy head fine-tuning;
  * tensorflow: `tf.lite.Interpreter` on the same backbone, the same head in tf_keras.
Start-up is wall time from spawning the child to its first inference result (Python start-up
and imports included). Personalisation runs here, without TensorFlow: for each subject, the
first half of its windows of each class fine-tune the global head, the second half score it.
Writes `bench/results/edge.json`. Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

RESULTS = Path(__file__).resolve().parent / "results" / "edge.json"
NUM_STORED = 1000
FINE_TUNE_EPOCHS = 5
FINE_TUNE_BATCH = 32
FIRST_INFERENCE = "first-inference"
# Chosen on the validation subject and training subjects of the watch run, not on test subjects.
_NOT_PRINTED = ("details", "machine")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        _run_child(args.child, args.bundle, args.data)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        workload = Path(scratch) / "workload.npz"
        write_workload(args.data, workload)
        results = {
            "edge": _measure_child("edge", args.bundle, workload),
            "tensorflow": _measure_child("tf", args.bundle, workload),
            "personalisation": personalisation(args.bundle, args.data, _subjects(args)),
        }
    report = _summary(results, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in _NOT_PRINTED}, indent=2))
    print(f"wrote {args.out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.edge", description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True, help="bundle directory")
    parser.add_argument("--data", type=Path, required=True, help="window dataset .npz")
    parser.add_argument("--run", type=Path, help="run directory: personalise its test subjects")
    parser.add_argument("--subjects", help="subjects to personalise, e.g. 8,9,10")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=["edge", "tf"], help=argparse.SUPPRESS)
    return parser


# -- parent: spawn, time, collect ---------------------------------------------------------------


def _measure_child(kind: str, bundle: Path, data: Path) -> dict[str, Any]:
    """Spawn one workload; start-up = spawn to its first-inference line."""
    command = [sys.executable, "-m", "bench.edge", "--child", kind]
    command += ["--bundle", str(bundle), "--data", str(data)]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert process.stdout is not None
    startup_s = None
    result: dict[str, Any] = {}
    for line in process.stdout:
        if line.strip() == FIRST_INFERENCE and startup_s is None:
            startup_s = time.perf_counter() - started
        elif line.startswith("{"):
            result = json.loads(line)
    if process.wait() != 0 or not result:
        raise RuntimeError(f"bench child {kind!r} failed (exit {process.returncode})")
    return {"startup_s": startup_s, **result}


def _summary(results: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    edge, tf = results["edge"], results["tensorflow"]
    return {
        "rss_mb": edge["rss_mb"],
        "tf_rss_mb": tf["rss_mb"],
        "startup_s": edge["startup_s"],
        "tf_startup_s": tf["startup_s"],
        "infer_ms_per_window": edge["infer_ms_per_window"],
        "tf_infer_ms_per_window": tf["infer_ms_per_window"],
        "finetune_ms": edge["finetune_ms"],
        "tf_finetune_ms": tf["finetune_ms"],
        "store_ms_per_window": edge["store_ms_per_window"],
        "backend": edge["backend"],
        "finetune_work": {
            "embeddings": NUM_STORED,
            "epochs": FINE_TUNE_EPOCHS,
            "batch_size": FINE_TUNE_BATCH,
        },
        "personalisation": results["personalisation"],
        "personalisation_method": (
            "per subject, as iomt simulate: each recording's earlier 70% of windows labelled and "
            "fine-tuned on (iomt.simulation.baselines.PERSONALISATION), later 30% scored; "
            "before = global head, after = fine-tuned head"
        ),
        "details": {"edge": edge, "tensorflow": tf},
        "bundle": str(args.bundle),
        "data": str(args.data),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
    }


def _subjects(args: argparse.Namespace) -> list[int] | None:
    if args.subjects:
        return [int(s) for s in args.subjects.split(",")]
    if args.run:
        split = json.loads((args.run / "split.json").read_text())
        return [int(s) for s in split["test_subjects"]]
    return None


# -- children: the same work on each stack ------------------------------------------------------


def _run_child(kind: str, bundle_path: Path, data_path: Path) -> None:
    workload = _edge_workload if kind == "edge" else _tensorflow_workload
    result = workload(bundle_path, data_path, lambda: print(FIRST_INFERENCE, flush=True))
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result), flush=True)


def _edge_workload(
    bundle_path: Path, data_path: Path, announce: Callable[[], None]
) -> dict[str, Any]:
    from bundle_format.reader import load_bundle
    from edge_runtime.head import Head
    from edge_runtime.interpreter import BACKEND_NAME, Int8Model
    from edge_runtime.local_update import local_update
    from edge_runtime.sample_store import SampleStore
    from fleet_protocol.messages import FitConfig

    bundle = load_bundle(bundle_path)
    backbone = Int8Model.from_path(bundle.backbone_path)
    windows, labels = _read_workload(data_path, bundle.normalise)
    backbone.run(windows[0])
    announce()
    embeddings, infer_ms = _timed_embeddings(backbone.run, windows)
    with tempfile.TemporaryDirectory() as scratch, SampleStore(f"{scratch}/s.sqlite") as store:
        started = time.perf_counter()
        for i, (window, embedding) in enumerate(zip(windows, embeddings, strict=True)):
            store.add_window(float(i), i + 0.5, window=window, embedding=embedding)
            store.label_range(float(i), i + 0.5, int(labels[i]))
        store_ms = (time.perf_counter() - started) * 1000 / len(windows)
        X, y = store.labelled_embeddings(limit=NUM_STORED)
    head = Head.from_npz(bundle.verified_head_path)
    fit = FitConfig(FINE_TUNE_EPOCHS, FINE_TUNE_BATCH, learning_rate=1e-3, optimizer="adam")
    started = time.perf_counter()
    local_update(head, fit, X, y, seed=0)
    finetune_ms = (time.perf_counter() - started) * 1000
    return {
        "backend": BACKEND_NAME,
        "infer_ms_per_window": infer_ms,
        "finetune_ms": finetune_ms,
        "store_ms_per_window": store_ms,
        "tensorflow_loaded": "tensorflow" in sys.modules,
    }


def _tensorflow_workload(
    bundle_path: Path, data_path: Path, announce: Callable[[], None]
) -> dict[str, Any]:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tf_keras

    from bundle_format.reader import load_bundle
    from edge_runtime.head import Head
    from edge_runtime.interpreter import Int8Model

    bundle = load_bundle(bundle_path)
    interpreter = tf.lite.Interpreter(model_path=str(bundle.backbone_path), num_threads=1)
    backbone = Int8Model(interpreter, str(bundle.backbone_path))
    windows, labels = _read_workload(data_path, bundle.normalise)
    backbone.run(windows[0])
    announce()
    embeddings, infer_ms = _timed_embeddings(backbone.run, windows)
    head = Head.from_npz(bundle.verified_head_path)
    model = tf_keras.Sequential(
        [tf_keras.Input(shape=(head.input_size,))]
        + [
            tf_keras.layers.Dense(head.weights[2 * i].shape[1], activation=name)
            for i, name in enumerate(head.activations)
        ]
    )
    model.set_weights(head.weights)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    started = time.perf_counter()
    model.fit(embeddings, labels, epochs=FINE_TUNE_EPOCHS, batch_size=FINE_TUNE_BATCH, verbose=0)
    finetune_ms = (time.perf_counter() - started) * 1000
    return {
        "backend": "tensorflow.lite",
        "infer_ms_per_window": infer_ms,
        "finetune_ms": finetune_ms,
    }


def write_workload(data_path: Path, out_path: Path) -> None:
    """The NUM_STORED windows (sensor units) both children process, cycling a small dataset.

    Children read this small file instead of the whole dataset, so their peak RSS is that of
    the runtime and not of a dataset a device never holds in memory.
    """
    with np.load(data_path, allow_pickle=False) as data:
        index = np.arange(NUM_STORED) % len(data["y"])
        np.savez(out_path, X=data["X"][index].astype(np.float32), y=data["y"][index])


def _read_workload(
    path: Path, normalise: Callable[[NDArray[np.float32]], NDArray[np.float32]]
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    with np.load(path, allow_pickle=False) as workload:
        return normalise(workload["X"]), workload["y"].astype(np.int64)


def _timed_embeddings(
    run: Callable[[NDArray[np.float32]], NDArray[np.float32]], windows: NDArray[np.float32]
) -> tuple[NDArray[np.float32], float]:
    started = time.perf_counter()
    embeddings = np.stack([run(window).reshape(-1) for window in windows])
    return embeddings, (time.perf_counter() - started) * 1000 / len(windows)


# -- personalisation (no TensorFlow) ------------------------------------------------------------


def personalisation(
    bundle_path: Path, data_path: Path, subjects: list[int] | None
) -> dict[str, Any]:
    """Per subject: the global head, then fine-tuned on the subject's earlier windows.

    The same protocol as `iomt simulate` (`iomt.simulation`): each recording's earlier 70 % of
    windows is labelled and fine-tuned on, its later 30 % is scored, with the device's
    personalisation settings.
    """
    from edge_runtime.device_loop import read_bundle_parts
    from iomt.simulation.baselines import DeviceData, Split
    from iomt.simulation.baselines import personalisation as personalise
    from iomt.simulation.partition import cut_groups, partition_by_subject

    parts = read_bundle_parts(bundle_path)
    backbone = parts.backbone()
    data = np.load(data_path)
    chosen = subjects or sorted(int(s) for s in np.unique(data["subject"]))
    sessions = cut_groups(data["y"], data["recording"] if "recording" in data.files else None)
    shards = partition_by_subject(sessions, data["subject"], None, chosen, len(chosen), 0.3)

    def split(index: NDArray[np.intp]) -> Split:
        return Split(parts.embed_windows(data["X"][index], backbone), data["y"][index])

    devices = [DeviceData(s.device_id, s.subject, split(s.train_index), split(s.eval_index))
               for s in shards]  # fmt: skip
    scores = personalise(parts.head, devices)
    return {
        str(d.subject): {"before": scores[d.device_id][0], "after": scores[d.device_id][1],
                         "train_windows": len(d.train.y), "test_windows": len(d.later.y)}
        for d in devices
    }  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
