"""Built-in sections of `docs/benchmarks.md` for parts whose modules bring no `report_section`.

Each writer takes a part's results JSON and returns markdown; every number comes from it.
"""

from __future__ import annotations

from typing import Any

from bench.federation_sparse import sparse_section
from bench.report import Plots, SectionWriter, fmt, fmt_range, markdown_table


def federation_section(results: dict[str, Any], plots: Plots) -> str:
    parts = [f"Task: {results['task']}; {results['sizes']['rounds']} rounds, "
             f"{results['sizes']['seeds']} seeds per accuracy figure.\n",
             _upload_table(results), _accuracy_table(results),
             sparse_section(results, plots), _throughput_table(results),
             _memory_table(results, plots), _robust_table(results, plots)]  # fmt: skip
    return "\n".join(parts)


def _upload_table(results: dict[str, Any]) -> str:
    full = results["upload_bytes_full_float32"]
    rows = [(f"head delta, {codec} (signed `ModelUpdate` as published)",
             fmt(results[f"upload_bytes_head_{codec}"]),
             f"{full / results[f'upload_bytes_head_{codec}']:.1f}x")
            for codec in ("int8", "float16", "float32")]  # fmt: skip
    rows.append(("whole float32 model, as full-model FedAvg sends it", fmt(full), "1x"))
    raw = results.get("upload_bytes_full_float32_weights_x4")
    if raw:
        rows.append((f"whole model's {fmt(results['full_model_weights'])} Keras weights x 4 bytes",
                     fmt(raw), f"{full / raw:.2f}x"))  # fmt: skip
    table = markdown_table(["upload per device per round", "bytes", "whole model / this"], rows)
    return (f"### Upload per round\n\n{table}\nFull model size: "
            f"{results['upload_bytes_full_float32_source']}. The head has "
            f"{fmt(results['head_parameters'])} parameters."
            f"{_raw_weights_note(results)}\n")  # fmt: skip


def _raw_weights_note(results: dict[str, Any]) -> str:
    ratio = results.get("upload_ratio_full_weights_to_head_int8")
    if not ratio:
        return ""
    return f" Against the raw weights alone the int8 head delta is {ratio}x smaller."


def _accuracy_table(results: dict[str, Any]) -> str:
    rows = [
        ("pretrained head, before any round", fmt(results["accuracy_initial_head"], 4)),
        ("FedAvg, int8 head deltas", fmt_range(results["accuracy_head_int8_runs"], 4)),
        ("FedAvg, float32 head deltas", fmt_range(results["accuracy_head_float32_runs"], 4)),
    ]
    table = markdown_table(["test-subject accuracy", "median (min–max)"], rows)
    gap = results["accuracy_head_float32"] - results["accuracy_head_int8"]
    weights = results.get("max_abs_weight_difference_int8_vs_float32")
    note = f"; the final heads differ by at most {fmt(weights)} per weight" if weights else ""
    return (f"### int8 against float32 deltas\n\n{table}\nGap: {fmt(100 * gap, 3)} points"
            f"{note}.\n")  # fmt: skip


def _throughput_table(results: dict[str, Any]) -> str:
    meaning = results["throughput_meaning"]
    rows = [(name, meaning[name], fmt_range(stat)) for name, stat in results["throughput"].items()]
    table = markdown_table(["variant", "what runs", "updates/s"], rows)
    return (f"### Aggregating {fmt(results['aggregated_updates'])} head updates\n\n{table}\n"
            f"Clock: {results.get('throughput_clock', 'wall time')}. Ours / Flower, same run: "
            f"{fmt_range(results.get('speed_ratio_ours_to_flwr_runs'))}x; the two means differ "
            f"by at most {fmt(results['max_abs_difference_ours_vs_flwr'])}.\n")  # fmt: skip


def _memory_table(results: dict[str, Any], plots: Plots) -> str:
    table = results["peak_mb"]
    rows = [(fmt(int(clients)), fmt_range(row["ours"], 4), fmt_range(row["flwr"], 4),
             fmt_range(row.get("ours_rss")), fmt_range(row.get("flwr_rss")))
            for clients, row in table.items()]  # fmt: skip
    header = ["clients", "ours heap MB", "Flower heap MB", "ours RSS MB", "Flower RSS MB"]
    text = "### Peak memory of one aggregation\n\n" + markdown_table(header, rows)
    fewest, most = min(table, key=int), max(table, key=int)
    growth = {impl: table[most][impl]["median"] - table[fewest][impl]["median"]
              for impl in ("ours", "flwr")}  # fmt: skip
    text += (
        f"\nFrom {fmt(int(fewest))} to {fmt(int(most))} clients the heap peak grows by "
        f"{fmt(growth['ours'])} MB for ours and {fmt(growth['flwr'])} MB for Flower.\n"
    )
    text += (
        "\nHeap = tracemalloc peak while updates arrive as wire bytes and are aggregated "
        "(imports excluded); RSS = the child process's VmHWM, imports included.\n"
    )
    return text + "\n" + _memory_plot(table, plots)


def _memory_plot(table: dict[str, Any], plots: Plots) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clients = [int(c) for c in table]
    figure, axis = plt.subplots(figsize=(5, 3.2))
    for impl, label in (("ours", "ours (streaming FedAvg)"), ("flwr", "Flower aggregate")):
        axis.plot(clients, [table[str(c)][impl]["median"] for c in clients], "o-", label=label)
    axis.set(xscale="log", xlabel="clients aggregated", ylabel="peak heap (MB)")
    axis.legend()
    return plots.save(figure, "federation_peak_memory", "peak memory against clients")


def _robust_table(results: dict[str, Any], plots: Plots) -> str:
    robust = results["robust"]
    rows = [(name, fmt_range(row["clean"], 4), fmt_range(row["poisoned"], 4),
             fmt(row["drop_points_vs_clean_fedavg"], 3),
             fmt(row.get("drop_points_vs_own_clean"), 3))
            for name, row in robust.items()]  # fmt: skip
    header = ["strategy", "accuracy, clean", "accuracy, poisoned",
              "drop vs clean FedAvg (points)", "drop vs own clean (points)"]  # fmt: skip
    text = (
        f"### Robustness: {results['robust_poisoned_clients']} of "
        f"{results['robust_clients']} clients poisoned ({results['robust_attack']})\n\n"
    )
    return text + markdown_table(header, rows) + "\n" + _robust_plot(robust, plots)


def _robust_plot(robust: dict[str, Any], plots: Plots) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(robust)
    positions = range(len(names))
    figure, axis = plt.subplots(figsize=(5.5, 3.2))
    for offset, label in ((-0.2, "clean"), (0.2, "poisoned")):
        values = [robust[n][label]["median"] for n in names]
        axis.bar([p + offset for p in positions], values, width=0.4, label=label)
    axis.set_xticks(list(positions), names)
    axis.set(ylabel="test accuracy", ylim=(0, 1.15))
    axis.legend(loc="upper center", ncol=2)
    return plots.save(figure, "federation_robust", "accuracy per strategy, clean and poisoned")


def edge_section(results: dict[str, Any], plots: Plots) -> str:
    pairs = [("peak RSS (MB)", "rss_mb", "tf_rss_mb"),
             ("start-up to first inference (s)", "startup_s", "tf_startup_s"),
             ("inference per window (ms)", "infer_ms_per_window", "tf_infer_ms_per_window"),
             ("head fine-tuning (ms)", "finetune_ms", "tf_finetune_ms")]  # fmt: skip
    rows = [(label, fmt(results.get(ours)), fmt(results.get(tf))) for label, ours, tf in pairs]
    text = markdown_table(["figure", f"edge ({results.get('backend')})", "TensorFlow"], rows)
    subjects = results.get("personalisation", {})
    people = [(s, fmt(r["before"], 4), fmt(r["after"], 4), r.get("test_windows"))
              for s, r in subjects.items()]  # fmt: skip
    if people:
        text += "\n### Personalisation\n\n" + markdown_table(
            ["subject", "global head", "fine-tuned head", "test windows"], people
        )
        text += f"\n{results.get('personalisation_method', '')}\n"
    return text


def bridge_section(results: dict[str, Any], plots: Plots) -> str:
    rows = [(u["baudrate"], u["faults"], fmt(u["bytes"]), fmt(u["bytes_per_s"]),
             fmt(u["efficiency"]), u.get("runs_bytes_per_s", ""))
            for u in results.get("uploads", [])]  # fmt: skip
    header = ["baud", "faults", "bytes", "bytes/s (median run)", "of line rate", "all runs"]
    return markdown_table(header, rows)


def dp_section(results: dict[str, Any], plots: Plots) -> str:
    keys = (
        "noise_multiplier",
        "sampling_rate",
        "clip",
        "target_quantile",
        "epsilon",
        "devices",
        "devices_per_round_mean",
        "accuracy_mean",
        "accuracy_std",
        "final_clip_median",
    )
    rows = [[_dp_cell(row, k) for k in keys] for row in results.get("settings", [])]
    text = _dp_setup(results) + markdown_table(list(keys), rows)
    noisy = [row for row in results.get("settings", []) if row.get("epsilon") is not None]
    if not noisy:
        return text
    return text + "\n" + _dp_frontier_plot(results["settings"], plots) + _dp_verdict(results)


def _dp_setup(results: dict[str, Any]) -> str:
    settings = results.get("settings", [])
    if not settings or "seeds" not in settings[0]:
        return ""
    first = settings[0]
    return (f"`bench/dp_watch.py` on `watch`: {first['rounds']} rounds, mean and std of "
            f"{first['seeds']} seeds, delta {first['delta']}. The 32-device fleet splits each "
            "of the 4 held-out subjects' training windows into 8 devices; larger fleets draw "
            "each further device's windows (as many) from the same subjects. q is the Poisson "
            "sampling rate (mean divided by q x fleet size); adaptive clips start at 0.1 and "
            "follow the target quantile of update norms (Andrew et al. 2021), their bits "
            "accounted. Epsilon from `aggregator.privacy_accountant` (RDP).\n\n")  # fmt: skip


def _dp_cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if key == "epsilon" and value is None:
        return "∞ (no noise)"
    return "" if value is None else fmt(value)


def _no_noise_accuracy(settings: list[dict[str, Any]], devices: int) -> float | None:
    plain = [r["accuracy_mean"] for r in settings
             if r.get("epsilon") is None and r["devices"] == devices]  # fmt: skip
    return plain[0] if plain else None


def _dp_frontier_plot(settings: list[dict[str, Any]], plots: Plots) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 3.4))
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in settings:
        if row.get("epsilon") is not None:
            clip = "adaptive clip" if row["clip"] == "adaptive" else f"clip {row['clip']}"
            label = f"{row['devices']} devices, q={row['sampling_rate']}, {clip}"
            groups.setdefault(label, []).append(row)
    for label, rows in groups.items():
        rows = sorted(rows, key=lambda r: r["epsilon"])
        axis.errorbar(
            [r["epsilon"] for r in rows],
            [r["accuracy_mean"] for r in rows],
            yerr=[r["accuracy_std"] for r in rows],
            fmt="o-",
            capsize=3,
            label=label,
        )
    for style, devices in zip((":", "--"), sorted({r["devices"] for r in settings}), strict=False):
        plain = _no_noise_accuracy(settings, devices)
        if plain is not None:
            axis.axhline(plain, linestyle=style, color="grey", label=f"no noise, {devices} devices")
    axis.set(xscale="log", xlabel="epsilon (delta 1e-5, 20 rounds)", ylabel="test accuracy")
    axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_xticks([1, 2, 4, 8, 16])
    axis.legend(fontsize=7)
    return plots.save(figure, "dp_frontier", "accuracy against epsilon")


def _dp_verdict(results: dict[str, Any]) -> str:
    """The acceptance line: the best setting at epsilon <= 8 against no noise."""
    settings = results["settings"]
    baseline = _no_noise_accuracy(settings, 32)
    fits = [r for r in settings if r.get("epsilon") is not None and r["epsilon"] <= 8]
    if baseline is None or not fits:
        return ""
    lines = []
    for devices in sorted({r["devices"] for r in fits}):
        best = max((r for r in fits if r["devices"] == devices), key=lambda r: r["accuracy_mean"])
        gap = 100 * (baseline - best["accuracy_mean"])
        lines.append(f"- {devices} devices: best at epsilon <= 8 is epsilon {fmt(best['epsilon'])}"
                     f" (z {fmt(best['noise_multiplier'])}, q {fmt(best['sampling_rate'])},"
                     f" clip {best['clip']}): accuracy {fmt(best['accuracy_mean'], 4)}, "
                     f"{gap:.2f} points below no noise on 32 devices "
                     f"({fmt(baseline, 4)}).")  # fmt: skip
    adaptive = [r for r in fits if r["clip"] == "adaptive"]
    if adaptive:
        worst = max(100 * (baseline - r["accuracy_mean"]) for r in adaptive)
        lines.append(f"- every adaptive-clip setting with epsilon <= 8 ({len(adaptive)}) is "
                     f"within {worst:.2f} points of no noise on 32 devices.")  # fmt: skip
    return "\n" + "\n".join(lines) + "\n"


SECTIONS: dict[str, SectionWriter] = {
    "federation": federation_section,
    "edge": edge_section,
    "bridge": bridge_section,
    "dp": dp_section,
}
