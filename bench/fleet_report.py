"""The fleet-scale section of docs/benchmarks.md, read from bench/results/fleet.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import Plots, fmt, fmt_range, markdown_table

_COLUMNS = (
    ("round_latency_s", "round latency (s)"),
    ("cpu_per_update_ms", "aggregator CPU per update, all processes (ms)"),
    ("busiest_process_cpu_per_update_ms", "busiest process CPU per update (ms)"),
    ("aggregator_peak_mb", "aggregator peak RSS, all processes (MB)"),
    ("largest_process_peak_mb", "largest process (MB)"),
    ("updates_per_s", "updates/s"),
)


def report_section(results: dict[str, Any], plots: Plots) -> str:
    """Table per device count and setup, growth, a latency plot; refreshes docs/scaling.md too."""
    if plots.directory.parent == SCALING_DOC.parent:  # the real docs, not a test's tmp dir
        update_scaling_doc(results)
    intro = (
        f"One round per run through one {results['broker']} on loopback against the real "
        "`iomt aggregator` processes — one single aggregator, or a coordinator with 1, 2 or 4 "
        "`--role worker` processes sharing the updates (MQTT 5 shared subscription) — with "
        "`--min-clients N` and `--registry`: every update's Ed25519 signature is verified. "
        f"Devices: {results['device_processes']} processes, "
        f"{results['devices_per_connection']} device identities per MQTT connection (each its "
        f"own key and topics); embeddings {results['embeddings']}; updates: {results['codec']}, "
        f"{results['devices_prepared']}. Median (min–max) of {results['repeats']} run(s). "
        "Latency runs from the round announcement to the new global model, as a subscriber "
        "sees them; CPU is every aggregator process's, counted from the announcement until every "
        "ack and the model are out. ×single: the same size's single aggregator in this run.\n\n"
    )
    return intro + _table(results) + _growth_table(results) + _plot(results["by_devices"], plots)


def _table(results: dict[str, Any]) -> str:
    rows = []
    for n, by_setup in results["by_devices"].items():
        single = by_setup.get("single")
        for setup, stats in by_setup.items():
            versus = "" if single is None or setup == "single" else (
                f"latency ×{fmt(_ratio(stats, single, 'round_latency_s'))}, CPU/update "
                f"×{fmt(_ratio(stats, single, 'cpu_per_update_ms'))}"
            )  # fmt: skip
            rows.append([fmt(int(n)), setup, *(fmt_range(stats[key]) for key, _ in _COLUMNS),
                         fmt(stats["accepted_min"]), fmt(stats.get("resent_max", 0)),
                         versus])  # fmt: skip
    header = ["devices", "aggregator", *(title for _, title in _COLUMNS), "accepted (min)",
              "resent after 15 s (max)", "×single"]  # fmt: skip
    return markdown_table(header, rows)


def _ratio(stats: dict[str, Any], baseline: dict[str, Any], key: str) -> float:
    return round(stats[key]["median"] / max(baseline[key]["median"], 1e-9), 2)


def _growth_table(results: dict[str, Any]) -> str:
    rows = [
        [step, setup, f"×{fmt(f['devices'])}", f"×{fmt(f['round_latency_s'])}",
         f"×{fmt(f['aggregator_cpu_s'])}", f"×{fmt(f['aggregator_peak_mb'])}"]
        for step, by_setup in results["growth"].items()
        for setup, f in by_setup.items()
    ]  # fmt: skip
    if not rows:
        return ""
    header = ["devices", "aggregator", "devices", "latency", "aggregator CPU", "peak RSS"]
    return "\nGrowth of the medians:\n\n" + markdown_table(header, rows)


def _plot(by_devices: dict[str, Any], plots: Plots) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [int(n) for n in by_devices]
    setups = list(next(iter(by_devices.values())))
    figure, axis = plt.subplots(figsize=(5, 3.2))
    for setup in setups:
        medians = [by_devices[str(n)][setup]["round_latency_s"]["median"] for n in counts]
        axis.plot(counts, medians, "o-", label=setup)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("devices")
    axis.set_ylabel("round latency (s)")
    axis.legend()
    axis.grid(True, which="both", alpha=0.3)
    return "\n" + plots.save(figure, "fleet_latency", "round latency against devices")


SCALING_DOC = Path(__file__).resolve().parent.parent / "docs" / "scaling.md"


def scaling_figures(results: dict[str, Any]) -> str:
    """The measured block of docs/scaling.md: latency, cost per update, memory, growth."""
    rows = []
    for n, by_setup in results["by_devices"].items():
        for setup, stats in by_setup.items():
            rows.append(
                [
                    fmt(int(n)),
                    setup,
                    fmt_range(stats["round_latency_s"]),
                    fmt(stats["cpu_per_update_ms"]["median"]),
                    fmt(stats["busiest_process_cpu_per_update_ms"]["median"]),
                    fmt(stats["aggregator_peak_mb"]["median"]),
                    fmt(stats["largest_process_peak_mb"]["median"]),
                    fmt(stats["updates_per_s"]["median"]),
                    fmt(stats["accepted_min"]),
                    fmt(stats.get("resent_max", 0)),
                ]
            )
    table = markdown_table(
        ["devices", "aggregator", "round latency (s)", "CPU per update, all processes (ms)",
         "busiest process CPU per update (ms)",
         "peak RSS, all processes (MB)", "largest process (MB)", "updates/s", "accepted",
         "resent"], rows,
    )  # fmt: skip
    steps = "; ".join(
        f"{step} ({setup}): latency ×{fmt(f['round_latency_s'])}, CPU ×{fmt(f['aggregator_cpu_s'])}"
        for step, by_setup in results["growth"].items()
        for setup, f in by_setup.items()
    )
    cores = results.get("machine", {}).get("cores")
    return (
        f"Measured by `python -m bench fleet` on one machine ({cores} cores, shared with the "
        f"emulated devices), one {results['broker']}, {results['device_processes']} device "
        f"processes with {results['devices_per_connection']} device identities per MQTT "
        f"connection, median (min–max) of {results['repeats']} run(s):\n\n{table}\n"
        f"Growth — {steps}.\n"
    )


def update_scaling_doc(results: dict[str, Any], doc: Path = SCALING_DOC) -> bool:
    """Rewrite the block between the markers of docs/scaling.md; False if there is none."""
    return replace_marked_block(doc, "fleet-figures", scaling_figures(results))


def replace_marked_block(doc: Path, name: str, block: str) -> bool:
    """Put `block` between `<!-- NAME:begin -->` and `<!-- NAME:end -->`; False if absent."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if not doc.exists():
        return False
    text = doc.read_text()
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{begin}\n{block}{end}{tail}")
    return True
