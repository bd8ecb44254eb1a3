"""The fleet-scale section of docs/benchmarks.md, read from bench/results/fleet.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import Plots, fmt, fmt_range, markdown_table

_COLUMNS = (
    ("round_latency_s", "round latency (s)"),
    ("aggregator_cpu_s", "aggregator CPU (s)"),
    ("aggregator_peak_mb", "aggregator peak RSS (MB)"),
    ("updates_per_s", "updates/s"),
    ("messages_per_s", "broker messages in + out /s"),
    ("bytes_per_s", "update bytes/s"),
)


def report_section(results: dict[str, Any], plots: Plots) -> str:
    """Table per device count, growth factors, a latency plot; refreshes docs/scaling.md too."""
    if plots.directory.parent == SCALING_DOC.parent:  # the real docs, not a test's tmp dir
        update_scaling_doc(results)
    by_devices = results["by_devices"]
    intro = (
        f"One round per run through one {results['broker']} on loopback against the real "
        "`iomt aggregator` (`--min-clients N`, `--registry`: every update's Ed25519 signature "
        f"is verified). Devices: paho clients in {results['device_processes']} processes; "
        f"embeddings {results['embeddings']}. Each device fine-tunes the head and sends: "
        f"{results['codec']}. "
        f"Median (min–max) of {results['repeats']} runs. Latency runs from the round "
        "announcement to the new global model, as a subscriber sees them.\n\n"
    )
    rows = [
        [fmt(int(n)), *(fmt_range(stats[key]) for key, _ in _COLUMNS), fmt(stats["accepted_min"])]
        for n, stats in by_devices.items()
    ]
    header = ["devices", *(title for _, title in _COLUMNS), "accepted (min)"]
    table = markdown_table(header, rows)
    growth_rows = [
        [step, *(f"×{fmt(v)}" for v in factors.values())]
        for step, factors in results["growth"].items()
    ]
    growth = markdown_table(
        ["devices", "latency", "aggregator CPU", "aggregator peak RSS"], growth_rows
    )
    return intro + table + "\nGrowth of the medians:\n\n" + growth + _plot(by_devices, plots)


def _plot(by_devices: dict[str, Any], plots: Plots) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [int(n) for n in by_devices]
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot(counts, [by_devices[str(n)]["round_latency_s"]["median"] for n in counts], "o-")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("devices")
    axis.set_ylabel("round latency (s)")
    axis.grid(True, which="both", alpha=0.3)
    return "\n" + plots.save(figure, "fleet_latency", "round latency against devices")


SCALING_DOC = Path(__file__).resolve().parent.parent / "docs" / "scaling.md"


def scaling_figures(results: dict[str, Any]) -> str:
    """The measured block of docs/scaling.md: latency, cost per update, growth."""
    rows = []
    for n, stats in results["by_devices"].items():
        devices = int(n)
        cpu = stats["aggregator_cpu_s"]["median"]
        share = 100 * cpu / stats["round_latency_s"]["median"]
        rows.append([
            fmt(devices),
            fmt_range(stats["round_latency_s"]),
            fmt(1000 * cpu / devices),
            fmt(share),
            fmt(stats["aggregator_peak_mb"]["median"]),
            fmt(stats["updates_per_s"]["median"]),
        ])  # fmt: skip
    table = markdown_table(
        ["devices", "round latency (s)", "aggregator CPU per update (ms)",
         "aggregator CPU / round latency (%)", "aggregator peak RSS (MB)", "updates/s"], rows,
    )  # fmt: skip
    steps = "; ".join(
        f"{step}: latency ×{fmt(f['round_latency_s'])}, CPU ×{fmt(f['aggregator_cpu_s'])}"
        for step, f in results["growth"].items()
    )
    cores = results.get("machine", {}).get("cores")
    return (
        f"Measured by `python -m bench fleet` on one machine ({cores} cores), one "
        f"{results['broker']}, one `iomt aggregator`, median (min–max) of "
        f"{results['repeats']} runs:\n\n{table}\nGrowth with ×10 devices — {steps}.\n"
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
