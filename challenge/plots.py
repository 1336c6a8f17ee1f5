"""Figures logged with runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def predicted_vs_true(truth: np.ndarray, prediction: np.ndarray, labels: list[str], scores: dict[str, float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 3
    rows = int(np.ceil(len(labels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.6 * rows), squeeze=False)
    for j, (axis, label) in enumerate(zip(axes.flat, labels)):
        axis.scatter(truth[:, j], prediction[:, j], s=8, alpha=0.6)
        axis.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        axis.set(title=f"{label}  r={scores.get(label, float('nan')):.3f}", xlabel="true", ylabel="predicted", xlim=(0, 1), ylim=(0, 1))
    for axis in list(axes.flat)[len(labels):]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def confusion_matrix_plot(truth: np.ndarray, decisions: np.ndarray, labels: list[str], path: Path) -> Path:
    """Row-normalised confusion matrix (recall per true class), counts in each cell's label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(truth, decisions, labels=list(range(len(labels))))
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    figure, axis = plt.subplots(figsize=(1 + 0.8 * len(labels), 0.8 * len(labels)))
    axis.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            axis.text(j, i, f"{100 * share[i, j]:.0f}%\n{counts[i, j]}", ha="center", va="center", fontsize=7,
                      color="white" if share[i, j] > 0.5 else "black")
    axis.set(xticks=range(len(labels)), yticks=range(len(labels)), xlabel="predicted", ylabel="true")
    axis.set_xticklabels(labels, rotation=45, ha="right")
    axis.set_yticklabels(labels)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
