"""Time to accuracy, synchronous against buffered asynchronous rounds, with slow devices.

    python -m bench async [--devices 10] [--rounds 10] [--versions 40] [--buffer-size 7]
                          [--max-staleness 6] [--train-time 1.0] [--slow-fraction 0.3]
                          [--slowdown 5]

Both runs are `iomt simulate` on the watch (`har`) task with the same devices, data, seed and
local training: real broker, aggregator and device processes. Every device's local training
lasts at least `--train-time` seconds of real wall time, and `--slow-fraction` of them (a seeded
draw) `--slowdown` times that, as a slower CPU would. The synchronous run waits for everyone
online each round; the asynchronous one applies a buffer every `--buffer-size` updates. Each
published version's holdout accuracy and the wall time it was closed at (from the aggregator's
state file) make the two curves. Time to accuracy: when each run first reached the final
accuracy of the synchronous run. Writes `bench/results/async.json`. Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import watch_bundle, write_results

PART = "async"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    watch_bundle()  # trains and converts once if the cache is empty
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    with tempfile.TemporaryDirectory(prefix="bench-async-") as scratch:
        runs = {mode: _run(args, mode, Path(scratch)) for mode in ("sync", "async")}
    results = {"settings": settings, **runs, **time_to_accuracy(runs["sync"], runs["async"])}
    path = write_results(PART, results, args.out)
    for mode in ("sync", "async"):
        run = runs[mode]
        print(f"{mode}: {len(run['curve'])} versions in {run['wall_s']} s,"
              f" final accuracy {run['final_accuracy']}")  # fmt: skip
    print(f"target {results['target_accuracy']}: sync {results['sync_time_to_target_s']} s,"
          f" async {results['async_time_to_target_s']} s")  # fmt: skip
    print(f"wrote {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench async",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--devices", type=int, default=10, help="device processes")
    parser.add_argument("--rounds", type=int, default=10, help="synchronous rounds")
    parser.add_argument("--versions", type=int, default=40, help="asynchronous versions")
    parser.add_argument("--buffer-size", type=int, default=7, help="async: updates per version")
    parser.add_argument("--max-staleness", type=int, default=6, help="async: staleness cap")
    parser.add_argument("--train-time", type=float, default=1.0, help="seconds per training")
    parser.add_argument("--slow-fraction", type=float, default=0.3, help="share of slow devices")
    parser.add_argument("--slowdown", type=float, default=5.0, help="how much slower they train")
    parser.add_argument("--seed", type=int, default=0, help="partition, slow draw, training")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/...)")
    return parser


def _run(args: argparse.Namespace, mode: str, scratch: Path) -> dict[str, Any]:
    """One `iomt simulate` run; its accuracy-against-wall-time curve."""
    from iomt.simulation.model_cache import default_cache_dir
    from iomt.simulation.runner import SimulationConfig, run_simulation

    config = SimulationConfig(
        task="har", devices=args.devices, out=scratch / mode, cache_dir=default_cache_dir(),
        rounds=args.rounds if mode == "sync" else args.versions, deadline_s=120.0,
        mode=mode, buffer_size=args.buffer_size, max_staleness=args.max_staleness,
        train_time_s=args.train_time, slow_fraction=args.slow_fraction, slowdown=args.slowdown,
        seed=args.seed,
    )  # fmt: skip
    print(f"== {mode}", file=sys.stderr)
    report = run_simulation(config, announce=_say, on_round=lambda m: _say(_progress(mode, m)))
    curve = accuracy_curve(scratch / mode / "fleet" / "aggregator.sqlite")
    rejected: dict[str, int] = {}
    for row in curve:
        for reason, count in row.pop("rejected").items():
            rejected[reason] = rejected.get(reason, 0) + count
    return {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "curve": curve,
        "wall_s": curve[-1]["wall_s"] if curve else None,
        "final_accuracy": curve[-1]["accuracy"] if curve else None,
        "pretrained_accuracy": report["summary"]["pretrained"],
        "updates_accepted": sum(row["participants"] for row in curve),
        "updates_held_over": sum(row["held_for_next"] for row in curve),
        "rejected": rejected,
    }


def accuracy_curve(state: Path) -> list[dict[str, Any]]:
    """Each closed round that published a version: wall time since the first round opened,
    holdout accuracy, version, and (async) the staleness it folded in."""
    from aggregator.state_store import StateStore

    with StateStore(state) as store:
        rounds = store.rounds()
    if not rounds:
        return []
    start = rounds[0].opened_unix
    curve = []
    for record in rounds:
        metrics = record.metrics or {}
        if record.closed_unix is None or metrics.get("accuracy") is None:
            continue
        curve.append({
            "version": metrics["model_version"],
            "wall_s": round(record.closed_unix - start, 2),
            "accuracy": round(float(metrics["accuracy"]), 4),
            "participants": metrics["participants"],
            "staleness_mean": metrics.get("staleness_mean"),
            "held_for_next": metrics.get("held_for_next", 0),  # async: a device's second update
            "rejected": metrics.get("rejected", {}),
        })  # fmt: skip
    return curve


def time_to_accuracy(sync: dict[str, Any], async_: dict[str, Any]) -> dict[str, Any]:
    """When each run first reached the synchronous run's final accuracy (None: never)."""
    target = sync["final_accuracy"]

    def first_at(curve: list[dict[str, Any]]) -> float | None:
        if target is None:
            return None
        return next((p["wall_s"] for p in curve if p["accuracy"] >= target), None)

    sync_s, async_s = first_at(sync["curve"]), first_at(async_["curve"])
    speedup = round(sync_s / async_s, 2) if sync_s and async_s else None
    sync_end = sync["wall_s"]
    return {
        "target_accuracy": target,
        "sync_time_to_target_s": sync_s,  # the first time sync was there (it may dip after)
        "sync_time_to_final_s": sync_end,  # when the sync run published its final head
        "async_time_to_target_s": async_s,
        "speedup": speedup,
        "speedup_vs_sync_run": round(sync_end / async_s, 2) if sync_end and async_s else None,
        "async_reached_target_sooner": async_s is not None and sync_s is not None
        and async_s < sync_s,
        "async_reached_target_before_sync_run_ended": async_s is not None
        and sync_end is not None and async_s < sync_end,
    }  # fmt: skip


def _progress(mode: str, metrics: dict[str, Any]) -> str:
    accuracy = metrics.get("accuracy")
    shown = "-" if accuracy is None else f"{accuracy:.3f}"
    return f"{mode} round {metrics['round']}: version {metrics['model_version']}, accuracy {shown}"


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def report_section(results: dict[str, Any], plots: Any) -> str:
    """The docs section: both curves, time to accuracy, settings (`bench/report.py`)."""
    from bench.report import fmt, markdown_table

    sync, async_ = results["sync"], results["async"]
    s = results["settings"]
    intro = (
        f"Time to accuracy on the watch task with {s['devices']} devices, "
        f"{s['slow_fraction']:.0%} of them {s['slowdown']:g}x slower (local training lasts "
        f"{s['train_time']:g} s, or {s['train_time'] * s['slowdown']:g} s on a slow device: a "
        f"real wait). Synchronous: {s['rounds']} rounds, each waiting for every online device. "
        f"Asynchronous: a buffer of {s['buffer_size']} updates per version, staleness cap "
        f"{s['max_staleness']}, weight 1/sqrt(1+staleness). "
        "`python -m bench async` (defaults), then `python -m bench report`.\n\n"
    )
    rows = [
        (mode, len(run["curve"]), fmt(run["wall_s"]), fmt(run["final_accuracy"]),
         fmt(results[f"{mode}_time_to_target_s"]), run["updates_accepted"],
         run.get("updates_held_over", "-"),
         ", ".join(f"{k} {v}" for k, v in sorted(run["rejected"].items())) or "none")
        for mode, run in (("sync", sync), ("async", async_))
    ]  # fmt: skip
    table = markdown_table(
        ["mode", "versions", "wall time (s)", "final accuracy",
         f"time to {fmt(results['target_accuracy'])} (s)", "updates folded",
         "held for the next buffer", "refused"],
        rows,
    )  # fmt: skip
    sooner = results["async_reached_target_before_sync_run_ended"]
    first = results["async_reached_target_sooner"]
    verdict = (
        f"\nAgainst the synchronous run's {fmt(results['sync_time_to_final_s'])} s to its final "
        f"head, asynchronous rounds reached that accuracy {'sooner' if sooner else 'NOT sooner'}"
        f" (speed-up {fmt(results['speedup_vs_sync_run'])}); against the first time the "
        f"synchronous run touched it ({fmt(results['sync_time_to_target_s'])} s, before dipping "
        f"again), {'sooner' if first else 'NOT sooner'} (speed-up {fmt(results['speedup'])}).\n\n"
    )
    return intro + table + verdict + _plot(sync, async_, plots)


def _plot(sync: dict[str, Any], async_: dict[str, Any], plots: Any) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    for name, run, style in (("sync", sync, "o-"), ("async", async_, ".-")):
        points = [(0.0, run["pretrained_accuracy"])] + [
            (p["wall_s"], p["accuracy"]) for p in run["curve"]
        ]
        axis.plot(*zip(*points, strict=True), style, label=name, markersize=4)
    axis.set_xlabel("wall time (s)")
    axis.set_ylabel("holdout accuracy")
    axis.legend()
    axis.grid(alpha=0.3)
    return plots.save(figure, "async_time_to_accuracy", "accuracy against wall time")
