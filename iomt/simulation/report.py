"""The simulation report: `report.json` for scripts, `report.md` and PNG plots for people."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Accuracies the summary table compares (test subjects, except `personalised`)."""

    pretrained: float
    federated: float
    personalised: float
    federated_on_device: float
    pooled_upper_bound: float
    local_only: float


def round_rows(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per closed round with the fields `report.json` documents."""
    rows = []
    for m in metrics:
        rejected = m.get("rejected") or {}
        rows.append(
            {
                "round": int(m["round"]),
                "accuracy": m.get("accuracy"),
                "participants": int(m.get("participants", 0)),
                "bytes_up": int(m.get("bytes_in", 0)),
                "bytes_down": int(m.get("bytes_out", 0)),
                "dropped": int(m.get("dropped", 0)),
                "rejected": int(sum(rejected.values()))
                if isinstance(rejected, dict)
                else int(rejected),
                "rejected_by_reason": rejected if isinstance(rejected, dict) else {},
                "status": m.get("status", ""),
                "round_time_s": m.get("round_time_s"),
            }
        )
    return rows


def build_report(
    config: dict[str, Any],
    rows: list[dict[str, Any]],
    summary: Summary,
    per_device: dict[str, dict[str, float]],
    faults: dict[str, Any],
    timings: dict[str, float],
) -> dict[str, Any]:
    """The whole `report.json` document."""
    return {
        "config": config,
        "rounds": rows,
        "summary": summary.__dict__,
        "devices": per_device,
        "faults": faults,
        "timings_s": timings,
    }


def write_report(out: Path, report: dict[str, Any]) -> list[Path]:
    """Write report.json, report.md and the plots; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    plots = _plots(out, report)
    (out / "report.md").write_text(markdown(report, [p.name for p in plots]))
    return [out / "report.json", out / "report.md", *plots]


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def summary_lines(summary: Summary) -> list[tuple[str, float]]:
    """The summary table's rows, in reading order."""
    return [
        ("pretrained backbone + head only", summary.pretrained),
        ("local-only (mean over devices)", summary.local_only),
        ("federated global head", summary.federated),
        ("pooled upper bound (central head)", summary.pooled_upper_bound),
        ("federated on devices' later windows", summary.federated_on_device),
        ("federated + personalised (same windows)", summary.personalised),
    ]


def markdown(report: dict[str, Any], plot_names: list[str]) -> str:
    """Human-readable report."""
    config, summary = report["config"], Summary(**report["summary"])
    lines = [
        f"# Federated simulation: {config['task']}",
        "",
        f"{config['devices']} devices, {config['rounds']} rounds, strategy "
        f"`{config['strategy']}`, codec `{config['codec']}`. Test subjects "
        f"{config['test_subjects']}; backbone pretrained on {config['pretrain_subjects']} "
        "only; devices federate the head only.",
        "",
        "| model | accuracy |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.3f} |" for name, value in summary_lines(summary)]
    lines += ["", *_pooled_words(summary)]
    lines += [
        "",
        "The first four rows are on the test subjects; the last two on each device's "
        "own later windows, never used to fine-tune.",
        "",
        "| round | accuracy | participants | dropped | rejected | bytes up | bytes down |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rounds"]:
        accuracy = f"{r['accuracy']:.3f}" if r["accuracy"] is not None else "-"
        lines.append(
            f"| {r['round']} | {accuracy} | {r['participants']} | {r['dropped']} | "
            f"{r['rejected']} | {r['bytes_up']} | {r['bytes_down']} |"
        )
    lines += [
        "",
        "| device | subject | global | personalised | local-only (test) |",
        "|---|---|---|---|---|",
    ]
    for device_id, d in report["devices"].items():
        lines.append(
            f"| {device_id} | {d['subject']} | {d['global']:.3f} | "
            f"{d['personalised']:.3f} | {d['local_only']:.3f} |"
        )
    faults = report["faults"]
    lines += ["", f"Faults: {json.dumps(faults)}", ""]
    lines += [f"![{name}]({name})" for name in plot_names]
    return "\n".join(lines) + "\n"


def _pooled_words(summary: Summary) -> list[str]:
    """What the pooled row is, and whether it bounded federation in this run."""
    gap = summary.pooled_upper_bound - summary.federated
    verdict = (
        f"Here it is {gap:.3f} above the federated head: federation got within that of pooling."
        if gap >= 0
        else f"Here the federated head beat it by {-gap:.3f}: in this run it is not an upper "
        "bound in fact, and the table says so rather than hide it."
    )
    return [
        "The pooled upper bound is the same head on the same int8 backbone, trained centrally "
        "on every window the devices hold (their earlier windows) with the fleet's optimiser "
        "and as many passes over each window as the federated rounds made: what federation "
        "would reach if the data could leave the devices. " + verdict
    ]


def _plots(out: Path, report: dict[str, Any]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = report["rounds"]
    rounds = [r["round"] for r in rows]
    summary = report["summary"]
    paths = [
        out / "accuracy_per_round.png",
        out / "bytes_per_round.png",
        out / "personalisation.png",
    ]

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(
        rounds,
        [r["accuracy"] if r["accuracy"] is not None else np.nan for r in rows],
        marker="o",
        label="federated global head",
    )
    for key, style in (("pretrained", ":"), ("pooled_upper_bound", "--"), ("local_only", "-.")):
        axes.axhline(summary[key], linestyle=style, color="grey", label=key.replace("_", " "))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("round")
    axes.set_ylabel("test accuracy")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(paths[0], dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(6, 4))
    width = 0.4
    axes.bar(np.array(rounds) - width / 2, [r["bytes_up"] for r in rows], width, label="up")
    axes.bar(np.array(rounds) + width / 2, [r["bytes_down"] for r in rows], width, label="down")
    axes.set_xlabel("round")
    axes.set_ylabel("bytes through the broker")
    axes.legend()
    figure.tight_layout()
    figure.savefig(paths[1], dpi=110)
    plt.close(figure)

    devices = report["devices"]
    figure, axes = plt.subplots(figsize=(6, 4))
    names = list(devices)
    x = np.arange(len(names))
    axes.bar(x - width / 2, [devices[n]["global"] for n in names], width, label="federated")
    axes.bar(
        x + width / 2, [devices[n]["personalised"] for n in names], width, label="+ personalised"
    )
    axes.set_xticks(x, names, rotation=45, ha="right")
    axes.set_ylabel("accuracy on own later windows")
    axes.set_ylim(0, 1)
    axes.legend(loc="lower right", framealpha=0.9)
    figure.tight_layout()
    figure.savefig(paths[2], dpi=110)
    plt.close(figure)
    return paths
