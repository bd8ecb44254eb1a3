"""Federation: upload bytes, accuracy of int8 against float32 deltas, the bytes-accuracy
frontier of top-k sparse updates, aggregation speed and memory against Flower, and robustness
to poisoned clients, on the `watch` head task.

    python -m bench federation [--rounds 10] [--sparse-rounds 20] [--seeds 3] [--quick]

The watch task embeds every window once with the bundle's int8 backbone (LiteRT): public
subjects pretrained the backbone, device subjects are the clients, test subjects are scored.
`--quick` swaps in synthetic embeddings and small sizes (no bundle, no TensorFlow) for tests.
Writes `bench/results/federation.json`. Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import median_of, watch_bundle, write_results
from bench.federation_aggregation import (
    FLOWER,
    OURS,
    THROUGHPUTS,
    peak_memory,
    throughput_run,
    wire_updates,
)
from bench.federation_rounds import (
    HeadTask,
    RoundsConfig,
    example_update,
    run_rounds,
    split_clients,
    synthetic_task,
)
from bench.federation_sparse import sparse_frontier
from fleet_protocol.messages import FitConfig
from fleet_protocol.signing import generate_signing_key
from fleet_protocol.wire import encode_message

PART = "federation"
ROBUST_STRATEGIES = ("fedavg", "median", "trimmed-mean", "krum", "fltrust")
POISONED_FRACTION = 0.2
# Local training of every client in every round (not tuned on test subjects).
FIT = FitConfig(local_epochs=2, batch_size=32, learning_rate=0.01, optimizer="sgd", momentum=0.9)


@dataclass(frozen=True)
class FullModel:
    """What a full-model FedAvg framework uploads per device per round, and where it came from."""

    bytes: int
    source: str
    weights: int | None = None  # every weight of the Keras model, when the run is readable


@dataclass(frozen=True)
class BenchSizes:
    """How much to run: rounds, seeds, robust clients, aggregation sizes, repeats."""

    rounds: int
    sparse_rounds: int
    seeds: int
    clients: int
    aggregate_updates: int
    client_counts: tuple[int, ...]
    repeats: int


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = _sizes(args)
    task, full_model = _task(args.quick)
    results = {
        "task": "synthetic (quick)" if args.quick else "watch (har preset)",
        "sizes": asdict(sizes),
        "fit": asdict(FIT),
        **upload_bytes(task, full_model),
        **accuracy_int8_vs_float32(task, sizes),
        **sparse_frontier(task, full_model.bytes, FIT, sizes.sparse_rounds, sizes.seeds),
        **aggregation_speed(task, sizes),
        "peak_mb": aggregation_memory(task, sizes),
        **robustness(task, sizes),
    }
    path = write_results(PART, results, args.out)
    hidden = ("peak_mb", "robust", "sizes", "fit", "sparse")
    shown = {k: v for k, v in results.items() if k not in hidden}
    print(json.dumps(shown, indent=2))
    print(f"wrote {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench federation", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="synthetic embeddings, small sizes")
    parser.add_argument("--rounds", type=int, help="federated rounds (default 10, quick 2)")
    parser.add_argument(
        "--sparse-rounds", type=int, help="rounds of the top-k frontier (default 20, quick 2)"
    )
    parser.add_argument("--seeds", type=int, help="runs per accuracy figure (default 3, quick 1)")
    parser.add_argument("--clients", type=int, help="clients in the robustness runs (default 10)")
    parser.add_argument("--updates", type=int, help="updates aggregated for throughput (1000)")
    parser.add_argument("--client-counts", help="peak-memory client counts (default 10,100,1000)")
    parser.add_argument("--repeats", type=int, help="repeats of each timing and memory figure")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/...)")
    return parser


def _sizes(args: argparse.Namespace) -> BenchSizes:
    quick = bool(args.quick)
    counts = args.client_counts or ("10,100" if quick else "10,100,1000")
    return BenchSizes(
        rounds=args.rounds or (2 if quick else 10),
        sparse_rounds=args.sparse_rounds or (2 if quick else 20),
        seeds=args.seeds or (1 if quick else 3),
        clients=args.clients or 10,
        aggregate_updates=args.updates or (100 if quick else 1000),
        client_counts=tuple(int(c) for c in counts.split(",")),
        repeats=args.repeats or (2 if quick else 5),
    )


def _task(quick: bool) -> tuple[HeadTask, FullModel]:
    if quick:
        task = synthetic_task()
        float32_head = encode_message(example_update(task, FIT), codec="float32")
        return task, FullModel(len(float32_head), "quick mode: the float32 head (no bundle)")
    return watch_task()


def watch_task() -> tuple[HeadTask, FullModel]:
    """Embed the watch dataset with the cached bundle's int8 backbone; roles of the har preset."""
    from edge_runtime.device_loop import read_bundle_parts
    from iomt.simulation.tasks import TASKS, device_subjects

    prepared = watch_bundle()
    parts = read_bundle_parts(prepared.bundle)
    embeddings, labels = parts.embed_dataset(prepared.data)
    with np.load(prepared.data, allow_pickle=False) as data:
        subjects = data["subject"].astype(np.int64)
    preset = TASKS["har"]
    public = (*preset.pretrain_subjects, *preset.pretrain_val_subjects)
    everyone = sorted(int(s) for s in np.unique(subjects))
    devices = device_subjects(preset, everyone, preset.pretrain_subjects, preset.test_subjects)
    task = HeadTask(np.asarray(embeddings, np.float32), labels, subjects, tuple(devices),
                    preset.test_subjects, public, parts.head)  # fmt: skip
    full = int(parts.bundle.manifest["float32_tflite_bytes"])
    source = "float32_tflite_bytes of the bundle manifest (whole LSTM-FCN)"
    return task, FullModel(full, source, _keras_weight_count(prepared.run / "weights.h5"))


def _keras_weight_count(path: Path) -> int | None:
    """Every weight in the training run's Keras file (h5py, no TensorFlow); None if unreadable."""
    try:
        import h5py  # type: ignore[import-untyped]
    except ImportError:
        return None
    count = 0

    def visit(_: str, item: Any) -> None:
        nonlocal count
        count += int(item.size) if isinstance(item, h5py.Dataset) else 0

    with h5py.File(path, "r") as weights:
        weights.visititems(visit)
    return count


def upload_bytes(task: HeadTask, full_model: FullModel) -> dict[str, Any]:
    """One signed head delta as a device publishes it, per codec, against the whole model."""
    update = example_update(task, FIT)
    key = generate_signing_key()
    rng = np.random.default_rng(0)
    sizes = {c: len(encode_message(update, codec=c, signing_key=key, rng=rng))
             for c in ("int8", "float16", "float32")}  # fmt: skip
    raw_bytes = 4 * full_model.weights if full_model.weights else None
    return {
        "upload_bytes_head_int8": sizes["int8"],
        "upload_bytes_head_float16": sizes["float16"],
        "upload_bytes_head_float32": sizes["float32"],
        "upload_bytes_full_float32": full_model.bytes,
        "upload_bytes_full_float32_source": full_model.source,
        "upload_ratio_full_float32_to_head_int8": round(full_model.bytes / sizes["int8"], 1),
        "full_model_weights": full_model.weights,
        "upload_bytes_full_float32_weights_x4": raw_bytes,
        "upload_ratio_full_weights_to_head_int8": round(raw_bytes / sizes["int8"], 1)
        if raw_bytes
        else None,
        "head_parameters": int(sum(np.size(w) for w in task.head.weights)),
    }


def accuracy_int8_vs_float32(task: HeadTask, sizes: BenchSizes) -> dict[str, Any]:
    """FedAvg over the device subjects (one client each), same rounds and seeds, per codec."""
    clients = split_clients(task, len(task.device_subjects), seed=0)
    scores: dict[str, list[float]] = {"int8": [], "float32": []}
    weight_gap = 0.0
    for seed in range(sizes.seeds):
        finals = {}
        for codec, runs in scores.items():
            config = RoundsConfig("fedavg", codec, sizes.rounds, FIT, seed)
            outcome = run_rounds(task, clients, config)
            runs.append(outcome.accuracy)
            finals[codec] = outcome.weights
        pairs = zip(finals["int8"], finals["float32"], strict=True)
        weight_gap = max(weight_gap, *(float(np.max(np.abs(a - b))) for a, b in pairs))
    int8, float32 = median_of(scores["int8"]), median_of(scores["float32"])
    return {
        "accuracy_head_int8": int8["median"],
        "accuracy_head_float32": float32["median"],
        "accuracy_head_int8_runs": int8,
        "accuracy_head_float32_runs": float32,
        "accuracy_gap_points": round(100 * (float32["median"] - int8["median"]), 2),
        "accuracy_initial_head": round(task.accuracy(task.head.weights), 4),
        "max_abs_weight_difference_int8_vs_float32": weight_gap,
    }


def aggregation_speed(task: HeadTask, sizes: BenchSizes) -> dict[str, Any]:
    """Updates/s of our streaming FedAvg and of Flower's `aggregate` on the same updates."""
    shapes = [tuple(w.shape) for w in task.head.weights]
    payloads = list(wire_updates(shapes, sizes.aggregate_updates, seed=1))
    throughput_run(payloads[:10], shapes)  # warm-up: imports and first-call costs stay out
    runs = [throughput_run(payloads, shapes, rotation) for rotation in range(3 * sizes.repeats)]
    figures = {name: median_of([r[name] for r in runs], digits=1) for name in THROUGHPUTS}
    ratio = median_of([r["ours_to_flwr"] for r in runs], digits=3)
    return {
        "updates_per_s": figures["ours"]["median"],
        "flwr_updates_per_s": figures["flwr"]["median"],
        "speed_ratio_ours_to_flwr": ratio["median"],
        "speed_ratio_ours_to_flwr_runs": ratio,
        "throughput_clock": "CPU time of the aggregating process (time.process_time)",
        "throughput": figures,
        "throughput_meaning": THROUGHPUTS,
        "aggregated_updates": sizes.aggregate_updates,
        "max_abs_difference_ours_vs_flwr": max(r["max_abs_difference"] for r in runs),
    }


def aggregation_memory(task: HeadTask, sizes: BenchSizes) -> dict[str, Any]:
    """Peak heap (tracemalloc) and RSS of each aggregator per client count, child processes."""
    shapes = [tuple(w.shape) for w in task.head.weights]
    table: dict[str, Any] = {}
    for clients in sizes.client_counts:
        row: dict[str, Any] = {}
        for impl in (OURS, FLOWER):
            runs = [peak_memory(impl, clients, shapes) for _ in range(sizes.repeats)]
            row[impl] = median_of([r["peak_mb"] for r in runs], digits=3)
            row[f"{impl}_rss"] = median_of([r["rss_mb"] for r in runs], digits=1)
        table[str(clients)] = row
        print(f"peak memory, {clients} clients: ours {row[OURS]['median']} MB, "
              f"flwr {row[FLOWER]['median']} MB", file=sys.stderr)  # fmt: skip
    return table


def robustness(task: HeadTask, sizes: BenchSizes) -> dict[str, Any]:
    """Accuracy per strategy, clean and with 20% of clients sending -10x their delta."""
    clients = split_clients(task, sizes.clients, seed=0)
    poisoned = frozenset(range(max(1, round(POISONED_FRACTION * sizes.clients))))
    table: dict[str, Any] = {}
    for name in ROBUST_STRATEGIES:
        row = {}
        for label, attackers in (("clean", frozenset()), ("poisoned", poisoned)):
            config = RoundsConfig(name, "int8", sizes.rounds, FIT, 0, attackers)
            runs = [run_rounds(task, clients, replace(config, seed=seed)).accuracy
                    for seed in range(sizes.seeds)]  # fmt: skip
            row[label] = median_of(runs)
        table[name] = row
        print(f"robust {name}: {row}", file=sys.stderr)
    baseline = table["fedavg"]["clean"]["median"]
    for row in table.values():
        attacked = row["poisoned"]["median"]
        row["drop_points_vs_clean_fedavg"] = round(100 * (baseline - attacked), 2)
        row["drop_points_vs_own_clean"] = round(100 * (row["clean"]["median"] - attacked), 2)
    return {
        "robust": table,
        "robust_clients": sizes.clients,
        "robust_poisoned_clients": len(poisoned),
        "robust_attack": "sign-flipped and scaled x10 (delta * -10), int8 codec",
    }


if __name__ == "__main__":
    sys.exit(main())
