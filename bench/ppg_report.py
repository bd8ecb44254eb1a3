"""The `ppg` section of docs/benchmarks.md, from bench/results/ppg.json."""

from __future__ import annotations

from typing import Any

from bench.report import Plots, fmt, markdown_table


def report_section(results: dict[str, Any], plots: Plots) -> str:
    """Per recording against HeartPy, detector agreement, then simulated PPG with motion."""
    del plots
    rows = [
        (
            row["name"],
            fmt(row["sample_rate_hz"]),
            fmt(row["duration_s"]),
            fmt(row["reference_mean_hr_bpm"]),
            fmt(row["mean_hr_bpm"]),
            fmt(row["hr_mae_bpm"]),
            f"{row['untrusted_share']:.1%}",
            f"{row['beats']} / {row['neurokit2_beats']} / {row['firmware_beats']}",
            f"{row['neurokit2_max_offset_samples']} / {row['firmware_max_offset_samples']}",
        )
        for row in results["recordings"]
    ]
    header = ["recording", "Hz", "s", "HeartPy bpm", "ours bpm", "series MAE bpm", "untrusted"]
    header += ["beats: numpy / NeuroKit2 / C", "max offset (samples): NeuroKit2 / C"]
    sim = results["simulated"]
    sim_rows = [
        ("motion bursts per minute", fmt(sim["artefacts_per_min"])),
        ("known beats found in trusted time", f"{sim['found_share_trusted']:.1%}"),
        ("trusted detections that are no beat", f"{sim['false_share_trusted']:.1%}"),
        ("beat-time error, mean (ms)", f"{sim['beat_bias_ms']:.1f}"),
        ("beat-time error, mean absolute (ms)", f"{sim['beat_mae_ms']:.1f}"),
        ("time marked untrusted", f"{sim['untrusted_share']:.1%}"),
        ("burst time marked untrusted", f"{sim['untrusted_share_in_bursts']:.1%}"),
        ("heart-rate series MAE (bpm)", fmt(sim["hr_mae_bpm"])),
    ]
    return (
        "Real recordings (HeartPy wheel) against HeartPy's own analysis:\n\n"
        + markdown_table(header, rows)
        + f"\nSimulated PPG ({fmt(sim['duration_s'])} s at {fmt(sim['sample_rate_hz'])} Hz)"
        " against the simulator's known beats:\n\n" + markdown_table(["figure", "value"], sim_rows)
    )
