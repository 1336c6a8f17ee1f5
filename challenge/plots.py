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
