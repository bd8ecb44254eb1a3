"""The Flower comparison section of docs/benchmarks.md, read from bench/results/flower.json."""

from __future__ import annotations

from typing import Any

from bench.report import Plots, fmt, fmt_range, markdown_table

_ROWS = (
    ("accuracy", "final accuracy (test subjects 8–10)"),
    ("bytes_up_per_device_round", "bytes uploaded per device per round"),
    ("bytes_down_per_device_round", "bytes downloaded per device per round"),
    ("total_bytes", "total bytes, all devices, up + down"),
    ("wall_s", "wall time (s)"),
    ("device_peak_mb", "device peak RSS, all its processes (MB)"),
    ("device_peak_mb_largest_process", "device peak RSS, largest single process (MB)"),
)


def report_section(results: dict[str, Any], plots: Plots) -> str:
    """Side-by-side table, the acceptance ratios, and how each figure was measured."""
    runtime = results["flower_runtime"]
    intro = (
        f"Same task for both: {results['task']}; {results['rounds']} rounds, "
        f"median (min–max) of {results['repeats']} run(s). Flower {results['flower_version']} "
        f"ran on its **{runtime}** runtime (one `flower-superlink`, one `flower-supernode` "
        "per device, `flwr run` of `bench/flower_app`), FedAvg on the whole float32 LSTM-FCN "
        f"trained with TensorFlow ({results['flower_local_epochs']} local epoch(s), Adam step "
        f"{results.get('flower_learning_rate')}) from "
        "the same pretrained weights, on the same replay files our devices read. Ours: "
        "`iomt simulate --task har` (int8 backbone, head fine-tuning, signed int8 deltas over "
        f"MQTT{_our_settings(results)}).\n\n"
    )
    stats = results["stats"]
    rows = [
        [title, fmt_range(stats["ours"].get(key)), fmt_range(stats["flower"].get(key))]
        for key, title in _ROWS
    ]
    table = markdown_table(["", "this toolkit", "Flower"], rows)
    ratios = markdown_table(
        ["acceptance", "measured"],
        [
            [
                "bytes per device per round, Flower / ours (≥ 100)",
                f"×{fmt(results['bytes_ratio'])}",
            ],
            ["accuracy, Flower − ours (points; within 2)", fmt(results["accuracy_gap_points"])],
            ["device peak memory, Flower / ours (≥ 5)", f"×{fmt(results['memory_ratio'])}"],
            [
                "same, counting only Flower's largest process (the ClientApp)",
                f"×{fmt(results.get('memory_ratio_largest_process'))}",
            ],
        ],
    )
    notes = (
        f"\n- Bytes: {results['bytes_measured_as']}.\n"
        f"- Memory: {results['device_peak_mb_measured_as']}.\n"
        "- Wall time: ours is the fleet phase of `iomt simulate` (aggregator and device "
        "processes started, all rounds); Flower's is `flwr run` from submission to the end "
        "(SuperLink and SuperNodes already up).\n"
    )
    return intro + table + "\n" + ratios + notes


def _our_settings(results: dict[str, Any]) -> str:
    runs = results.get("runs", {}).get("ours") or [{}]
    settings = runs[0].get("settings")
    if not settings:
        return ""
    return (f"; {settings['strategy']}, {settings['local_epochs']} local epochs, "
            f"step {settings['learning_rate']}")  # fmt: skip
