"""The bytes-accuracy frontier of sparse updates: top-k densities against dense int8.

For each density (100 % = dense int8, then 10, 5, 2, 1 % top-k with error feedback), with and
without zstd, FedAvg runs the same rounds and seeds on the watch head task through the
device's path (`bench.federation_rounds.run_rounds`): bytes of every signed update as
published (mean, max), their ratio to the full float32 model, and the final test accuracy
(mean of the seeds), in points against dense int8 of the same runs; and the downlink: the
signed full new head per round against what a device holding its parent downloads (the patch,
`fleet_protocol.model_patch`, when smaller). Measures; asserts nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.common import median_of
from bench.federation_rounds import HeadTask, RoundsConfig, run_rounds, split_clients
from bench.report import Plots, fmt, markdown_table
from fleet_protocol.messages import FitConfig

DENSITIES = (1.0, 0.10, 0.05, 0.02, 0.01)
TARGET_RATIO = 1000.0  # acceptance of issue 23: >= 1,000x fewer bytes than the float32 model
TARGET_POINTS = 1.0  # ... within 1 accuracy point of dense int8 (mean of the seeds)


def codec_text(density: float, zstd: bool) -> str:
    """The `--codec` text of one setting."""
    base = "int8" if density >= 1.0 else f"topk:{density:g}"
    return base + ("+zstd" if zstd else "")


def sparse_frontier(
    task: HeadTask, full_bytes: int, fit: FitConfig, rounds: int, seeds: int
) -> dict[str, Any]:
    """Every setting's bytes and accuracy; the acceptance verdict of the best sparse one."""
    clients = split_clients(task, len(task.device_subjects), seed=0)
    rows = [_setting(task, clients, full_bytes, fit, rounds, seeds, codec_text(d, z), d)
            for d in DENSITIES for z in (False, True)]  # fmt: skip
    dense = rows[0]["accuracy_mean"]
    for row in rows:
        row["points_below_dense_int8"] = round(100 * (dense - row["accuracy_mean"]), 2)
    return {
        "sparse_rounds": rounds,
        "sparse_seeds": seeds,
        "sparse_clients": len(clients),
        "sparse": rows,
        "sparse_acceptance": _acceptance(rows),
    }


def _setting(task: HeadTask, clients: list[Any], full_bytes: int, fit: FitConfig, rounds: int,
             seeds: int, codec: str, density: float) -> dict[str, Any]:  # fmt: skip
    outcomes = [run_rounds(task, clients, RoundsConfig("fedavg", codec, rounds, fit, seed))
                for seed in range(seeds)]  # fmt: skip
    sizes = np.array([size for outcome in outcomes for size in outcome.update_bytes])
    heads = [size for outcome in outcomes for size in outcome.head_bytes]
    fetched = [size for outcome in outcomes for size in outcome.downlink_bytes]
    accuracies = [outcome.accuracy for outcome in outcomes]
    mean_bytes = float(np.mean(sizes))
    return {
        "codec": codec,
        "density": density,
        "bytes_mean": round(mean_bytes, 1),
        "bytes_max": int(np.max(sizes)),
        "updates": int(sizes.size),
        "ratio_full_float32": round(full_bytes / mean_bytes, 1),
        "ratio_full_float32_at_max": round(full_bytes / int(np.max(sizes)), 1),
        "accuracy_mean": round(float(np.mean(accuracies)), 4),
        "accuracy_runs": median_of(accuracies),
        "downlink_full_bytes_mean": round(float(np.mean(heads)), 1),
        "downlink_bytes_mean": round(float(np.mean(fetched)), 1),
        "downlink_patch_share": round(float(np.mean(np.array(fetched) < np.array(heads))), 3),
    }


def _acceptance(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The smallest setting that meets both targets (ratio on mean bytes), if any."""
    passing = [r for r in rows if r["ratio_full_float32"] >= TARGET_RATIO
               and r["points_below_dense_int8"] <= TARGET_POINTS]  # fmt: skip
    best = min(passing, key=lambda r: r["bytes_mean"]) if passing else None
    return {
        "target_ratio": TARGET_RATIO,
        "target_points": TARGET_POINTS,
        "met": best is not None,
        "setting": None if best is None else best["codec"],
        "meeting": [r["codec"] for r in passing],
    }


def sparse_section(results: dict[str, Any], plots: Plots) -> str:
    """The frontier's table and plot in docs/benchmarks.md (empty for older results)."""
    rows = results.get("sparse")
    if not rows:
        return ""
    table = markdown_table(
        ["`--codec`", "bytes per update, mean", "max", "full float32 / mean", "full / max",
         f"accuracy, mean of {results['sparse_seeds']} seeds", "points below dense int8"],
        [(f"`{r['codec']}`", fmt(r["bytes_mean"]), fmt(r["bytes_max"]),
          f"{fmt(r['ratio_full_float32'])}x", f"{fmt(r['ratio_full_float32_at_max'])}x",
          fmt(r["accuracy_mean"], 4), f"{r['points_below_dense_int8']:.2f}") for r in rows],
    )  # fmt: skip
    verdict = results["sparse_acceptance"]
    meeting = ", ".join(f"`{c}`" for c in verdict["meeting"]) or "none"
    return (
        f"### Bytes against accuracy: top-k with error feedback\n\n"
        f"FedAvg, {results['sparse_clients']} devices, {results['sparse_rounds']} rounds; every "
        f"update signed as a device publishes it. Settings with at least "
        f"{fmt(verdict['target_ratio'])}x fewer bytes than the full float32 model (mean) and "
        f"at most {fmt(verdict['target_points'])} point below dense int8: {meeting}.\n\n"
        f"{table}\n{_frontier_plot(rows, results['upload_bytes_full_float32'], plots)}\n"
        f"{_downlink_table(rows)}"
    )


def _downlink_table(rows: list[dict[str, Any]]) -> str:
    """Per round, the signed full head against what a device holding its parent downloads."""
    if "downlink_bytes_mean" not in rows[0]:
        return ""
    plain = [r for r in rows if not r["codec"].endswith("+zstd")]  # zstd changes no head
    table = markdown_table(
        ["uplink `--codec`", "full head, bytes (mean)", "downloaded with patches, bytes (mean)",
         "rounds a patch was smaller"],
        [(f"`{r['codec']}`", fmt(r["downlink_full_bytes_mean"]), fmt(r["downlink_bytes_mean"]),
          f"{100 * r['downlink_patch_share']:.0f} %") for r in plain],
    )  # fmt: skip
    return (
        "#### Downlink: the new head as a patch of its parent\n\n"
        "Each round's new head, signed as the aggregator publishes it on `model/{v}`, against "
        "what a device holding the previous head downloads (`patch/{v}` when smaller, "
        "`fleet_protocol.model_patch`).\n\n" + table
    )


def _frontier_plot(rows: list[dict[str, Any]], full_bytes: int, plots: Plots) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.6))
    for zstd, marker in ((False, "o-"), (True, "s--")):
        series = [r for r in rows if r["codec"].endswith("+zstd") == zstd]
        axis.plot([r["bytes_mean"] for r in series], [r["accuracy_mean"] for r in series],
                  marker, label="+zstd" if zstd else "no compression")  # fmt: skip
        for row in series if not zstd else []:
            axis.annotate(f"{row['density']:.0%}", (row["bytes_mean"], row["accuracy_mean"]),
                          textcoords="offset points", xytext=(4, 4), fontsize=8)  # fmt: skip
    dense = rows[0]["accuracy_mean"]
    axis.axhline(dense - TARGET_POINTS / 100, color="grey", linestyle=":",
                 label="dense int8 - 1 point")  # fmt: skip
    axis.axvline(full_bytes / TARGET_RATIO, color="red", linestyle=":", label="1,000x smaller")
    axis.set(xscale="log", xlabel="bytes per update (mean, signed)", ylabel="test accuracy")
    axis.legend(fontsize=8)
    return plots.save(figure, "federation_sparse_frontier", "bytes against accuracy per density")
