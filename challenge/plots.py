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
    for axis in list(axes.flat)[len(labels) :]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def confusion_matrix_plot(truth: np.ndarray, decisions: np.ndarray, labels: list[str], path: Path, title: str | None = None) -> Path:
    """Row-normalised confusion matrix (recall per true class), counts in each cell's label,
    with a title saying what it shows (modality, split, corpus, n) at a readable size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(truth, decisions, labels=list(range(len(labels))))
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    side = max(4.5, 1.5 + 0.9 * len(labels))
    figure, axis = plt.subplots(figsize=(side, side * 0.9))
    axis.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            axis.text(
                j,
                i,
                f"{100 * share[i, j]:.0f}%\n{counts[i, j]}",
                ha="center",
                va="center",
                fontsize=10,
                color="white" if share[i, j] > 0.5 else "black",
            )
    axis.set(xticks=range(len(labels)), yticks=range(len(labels)))
    axis.set_xlabel("predicted", fontsize=11)
    axis.set_ylabel("true", fontsize=11)
    axis.set_xticklabels(labels, rotation=45 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center", fontsize=10)
    axis.set_yticklabels(labels, fontsize=10)
    if title:
        import textwrap

        axis.set_title("\n".join(textwrap.wrap(title, 48)), fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def importance_plot(names: list[str], values: np.ndarray, title: str, path: Path) -> Path:
    """Horizontal bars, the most important column on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 1.2 + 0.32 * len(names)))
    axis.barh(range(len(names))[::-1], values, color="#3b75af")
    axis.set_yticks(range(len(names))[::-1], names, fontsize=8)
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
