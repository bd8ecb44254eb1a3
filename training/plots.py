"""PNG figures for reports; matplotlib is imported lazily and drawn off-screen."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_confusion_matrix(confusion: np.ndarray, labels: list[str], title: str, path: Path) -> None:
    """Row-normalised confusion matrix with counts, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for (row, col), count in np.ndenumerate(confusion):
        colour = "white" if rates[row, col] > 0.5 else "black"
        axes.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
