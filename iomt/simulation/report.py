"""The simulation report: `report.json` for scripts, `report.md` and PNG plots for people."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
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


@dataclass(frozen=True)
class PooledChoice:
    """How the pooled row's central trainer chose its recipe (`iomt.simulation.pooled`)."""

    recipe: str
    validation: dict[str, float]  # leave-one-device-out accuracy of every candidate recipe
    fleet_recipe: str  # the candidate that is the fleet's own procedure
    pretrained_recipe: str = ""  # the candidate that keeps the pretrained head (absent: older)


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
    per_device: dict[str, dict[str, Any]],
    faults: dict[str, Any],
    timings: dict[str, float],
    pooled: PooledChoice | None = None,
    per_test_subject: dict[int, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """The whole `report.json` document."""
    return {
        "config": config,
        "rounds": rows,
        "summary": summary.__dict__,
        "pooled": None if pooled is None else asdict(pooled),
        "per_test_subject": {str(s): scores for s, scores in (per_test_subject or {}).items()},
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
        f"only{_lab_words(config.get('lab_subjects'))}; devices federate the head only.",
        "",
        "| model | accuracy |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.3f} |" for name, value in summary_lines(summary)]
    pooled = report.get("pooled")
    lines += ["", pooled_words(summary, None if pooled is None else PooledChoice(**pooled))]
    if len(report.get("per_test_subject") or {}) >= 2:
        lines += ["", person_gain_words(report["per_test_subject"])]
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
        "| device | trained on | subject | global | personalised | gain | local-only (test) |",
        "|---|---|---|---|---|---|---|",
    ]
    for device_id, d in report["devices"].items():
        gain = d["personalised"] - d["global"]
        lines.append(
            f"| {device_id} | {d.get('trained_on', 'pi')} | {d['subject']} | {d['global']:.3f} | "
            f"{d['personalised']:.3f} | {gain:+.3f} | {d['local_only']:.3f} |"
        )
    faults = report["faults"]
    lines += ["", f"Faults: {json.dumps(faults)}", ""]
    lines += [f"![{name}]({name})" for name in plot_names]
    return "\n".join(lines) + "\n"


def _lab_words(lab_subjects: list[int] | None) -> str:
    """Who was recorded in the lab: the pretrained head's gap to daily life starts there."""
    if not lab_subjects:
        return ""
    return (
        f" (subjects {lab_subjects} recorded in a lab protocol: seated, stressors of the TSST's "
        "size; devices and test subjects in daily life)"
    )


def pooled_words(summary: Summary, choice: PooledChoice | None) -> str:
    """What the pooled row is, in what sense it bounds federation, and whether it did here."""
    words = (
        "The pooled row is one central trainer with the same int8 backbone and pretrained head, "
        "trained centrally on every window the devices hold (their earlier windows) and nothing "
        "else. "
    )
    if choice is not None and choice.validation:
        scores = choice.validation
        words += (
            f"It chose `{choice.recipe}` among {len(scores)} recipes by leave-one-device-out "
            f"accuracy on those windows ({scores[choice.recipe]:.3f}). One candidate is the "
            f"fleet's own procedure run centrally ({scores[choice.fleet_recipe]:.3f}), so on "
            "that validation the pooled row is an upper bound on federation by construction. "
        )
        if choice.pretrained_recipe in scores:
            words += (
                f"Held out in turn, each device's person scores {scores[choice.fleet_recipe]:.3f} "
                f"with the fleet's procedure run on the others against "
                f"{scores[choice.pretrained_recipe]:.3f} with the pretrained head: what federation "
                "gives people it did not train on, read over every device person rather than the "
                "few test subjects. "
            )
    gap = summary.pooled_upper_bound - summary.federated
    verdict = (
        f"On the test subjects it is {gap:.3f} above the federated head: here it bounds "
        "federation in fact too."
        if gap >= 0
        else f"On the test subjects the federated head beat it by {-gap:.3f}: on new people it "
        "is an estimate, not a guarantee, and in this run it is not an upper bound in fact."
    )
    return words + verdict


def person_gain_words(per_test_subject: dict[str, dict[str, float]]) -> str:
    """The federated head's gain person by person: how sure the mean gain is, and how shared.

    Test subjects differ by more than the gains the report is read for, so the gain's standard
    error over people says how many test subjects the headline figure rests on.
    """
    gains = 100 * np.array([s["federated"] - s["pretrained"] for s in per_test_subject.values()])
    error = gains.std(ddof=1) / np.sqrt(gains.size)
    return (
        f"Person by person, the federated head gains {gains.mean():+.1f} points on the "
        f"pretrained one over the {gains.size} test subjects (standard error {error:.1f}); "
        f"{int(np.sum(gains > 0))} gain, {int(np.sum(gains < 0))} lose. This mean weights each "
        "person alike; the table's rows weight each window alike."
    )


def _plots(out: Path, report: dict[str, Any]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {
        "accuracy_per_round.png": accuracy_figure(report),
        "bytes_per_round.png": bytes_figure(report),
        "personalisation.png": personalisation_figure(report),
    }
    paths = []
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=110, bbox_inches="tight")  # nothing clipped at the edges
        plt.close(figure)
        paths.append(out / name)
    return paths


def accuracy_figure(report: dict[str, Any]) -> Any:
    """Test accuracy per round from round 0 (the pretrained head) on a full 0-1 axis."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows, summary = report["rounds"], report["summary"]
    rounds = [0] + [r["round"] for r in rows]
    scores = [summary["pretrained"]] + [
        r["accuracy"] if r["accuracy"] is not None else np.nan for r in rows
    ]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(rounds, scores, marker="o", label="federated global head (round 0: pretrained)")
    for key, style in (("pooled_upper_bound", "--"), ("local_only", "-.")):
        axes.axhline(summary[key], linestyle=style, color="grey", label=key.replace("_", " "))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(title="Test accuracy per federated round", xlabel="round", ylabel="test accuracy",
             ylim=(0, 1.02), xlim=(-0.3, max(rounds) + 0.3))  # fmt: skip
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure


def bytes_figure(report: dict[str, Any]) -> Any:
    """Kilobytes up (device updates) and down (models, announcements) per round."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = report["rounds"]
    rounds = np.array([r["round"] for r in rows])
    width = 0.4
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.bar(rounds - width / 2, [r["bytes_up"] / 1e3 for r in rows], width, label="up (updates)")
    axes.bar(rounds + width / 2, [r["bytes_down"] / 1e3 for r in rows], width,
             label="down (models, rounds, acks)")  # fmt: skip
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(title="Traffic through the broker per round", xlabel="round",
             ylabel="kilobytes")  # fmt: skip
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize=8)
    figure.tight_layout()
    return figure


def personalisation_figure(report: dict[str, Any]) -> Any:
    """Per device: federated head, personalised head and a head trained on its data alone."""
    import matplotlib.pyplot as plt

    devices = report["devices"]
    names = list(devices)
    x = np.arange(len(names))
    width = 0.27
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for offset, key, label in ((-width, "global", "federated"),
                               (0.0, "personalised", "+ personalised"),
                               (width, "local_only", "local only")):  # fmt: skip
        axes.bar(x + offset, [devices[n][key] for n in names], width, label=label)
    axes.set_xticks(x, names, rotation=45, ha="right")
    axes.set(title="Accuracy on each device's own later windows", xlabel="device",
             ylabel="accuracy", ylim=(0, 1.05))  # fmt: skip
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, fontsize=8)
    figure.tight_layout()
    return figure
