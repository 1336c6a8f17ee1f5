"""The analyses of the smiling-and-laughter studies, as CSV tables and PNG figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def classification_table(truth: np.ndarray, decided: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Precision, recall and F1 per class (with whether the class occurs in this truth), then the
    summary rows: macro (over the classes present: the headline), macro_all_classes (every class,
    absent ones scoring 0: kept for comparison with papers that report it), micro, and kappa
    (Cohen's, in the f1 column)."""
    from sklearn.metrics import precision_recall_fscore_support

    from challenge.metrics import classification_figures

    labels = list(range(len(names)))
    p, r, f, support = precision_recall_fscore_support(truth, decided, labels=labels, zero_division=0)
    table = pd.DataFrame({"class": names, "precision": p, "recall": r, "f1": f, "support": support, "present": support > 0})
    figures = classification_figures(truth, decided, len(names))
    present = table["present"].to_numpy()
    macro_p, macro_r = (float(p[present].mean()), float(r[present].mean())) if present.any() else (np.nan, np.nan)
    micro_p, micro_r, _, _ = precision_recall_fscore_support(truth, decided, labels=labels, average="micro", zero_division=0)
    table.loc[len(table)] = ["macro", macro_p, macro_r, figures["macro_f1"], int(len(truth)), True]
    table.loc[len(table)] = ["macro_all_classes", float(p.mean()), float(r.mean()), figures["macro_f1_all_classes"], int(len(truth)), True]
    table.loc[len(table)] = ["micro", micro_p, micro_r, figures["micro_f1"], int(len(truth)), True]
    table.loc[len(table)] = ["kappa", np.nan, np.nan, figures["kappa"], int(len(truth)), True]
    return table


def recall_and_precision_matrices(truth: np.ndarray, decided: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Recall matrix: row i (truth) normalised, entry i,j = share of class-i frames predicted j.
    Its dual, the precision matrix: row i (prediction) normalised, entry i,j = share of frames
    predicted i whose truth is j."""
    counts = np.zeros((classes, classes))
    np.add.at(counts, (truth, decided), 1)
    recall = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    precision = counts.T / np.maximum(counts.T.sum(1, keepdims=True), 1)
    return recall, precision


def intensity_heatmap(
    intensities: list[str],
    decided: np.ndarray,
    rows: list[str],
    columns: list[str],
    path: Path,
    title: str = "prediction by intensity (row %)",
) -> pd.DataFrame:
    """Rows expression/intensity, columns predicted class, each row in percent (sums to 100)."""
    present = [r for r in rows if r in set(intensities)]
    table = pd.DataFrame(0.0, index=present, columns=columns)
    counts = pd.Series(intensities).value_counts()
    for row, column in zip(intensities, decided):
        table.loc[row, columns[column]] += 1
    table = table.div(table.sum(axis=1), axis=0) * 100
    plt = _pyplot()
    # cells wide and tall enough for their labels: the row names sit in a margin of their own
    figure, axis = plt.subplots(figsize=(3.2 + 1.3 * len(columns), 0.55 * len(present) + 1.8))
    axis.imshow(table.to_numpy(), cmap="Blues", vmin=0, vmax=100, aspect="auto")
    for i, row in enumerate(present):
        for j in range(len(columns)):
            value = table.iloc[i, j]
            axis.text(j, i, f"{value:.0f}%", ha="center", va="center", fontsize=10, color="white" if value > 50 else "black")
    axis.set(xticks=range(len(columns)), yticks=range(len(present)))
    axis.set_xlabel("predicted", fontsize=11)
    import textwrap

    axis.set_title("\n".join(textwrap.wrap(title, 56)), fontsize=11)
    axis.set_xticklabels(columns, fontsize=10)
    axis.set_yticklabels([f"{r} (n={counts[r]})" for r in present], fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return table


def tsne_plot(
    embeddings: np.ndarray, intensities: list[str], path: Path, seed: int = 0, title: str = "t-SNE of clip embeddings"
) -> np.ndarray:
    """2-D t-SNE of clip embeddings, hue by expression, shade by intensity (darker = stronger)."""
    from sklearn.manifold import TSNE

    points = TSNE(2, perplexity=min(30, max(2, len(embeddings) // 4)), random_state=seed, init="pca").fit_transform(embeddings)
    hues = {"Laughs": "Reds", "Smiles": "Blues", "None": "Greys"}
    strength = {"high": 0.95, "medium": 0.75, "low": 0.55, "subtle": 0.4}
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 6))
    for label in sorted(set(intensities), key=lambda r: ("Laughs" not in r, "Smiles" not in r, r)):
        expression, _, level = label.partition(" ")
        colour = plt.get_cmap(hues[expression])(strength.get(level, 0.5))
        keep = np.array([i == label for i in intensities])
        axis.scatter(points[keep, 0], points[keep, 1], s=10, color=colour, label=label, alpha=0.8)
    axis.legend(fontsize=7, markerscale=1.5)
    import textwrap

    axis.set(xticks=[], yticks=[])
    axis.set_title("\n".join(textwrap.wrap(title, 56)), fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return points


def matrices_plot(recall: np.ndarray, precision: np.ndarray, names: list[str], path: Path) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(9, 4))
    for axis, matrix, title, rows, columns in (
        (axes[0], recall, "recall (row: truth)", "true", "predicted"),
        (axes[1], precision, "precision (row: prediction)", "predicted", "true"),
    ):
        axis.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(names)):
            for j in range(len(names)):
                axis.text(
                    j,
                    i,
                    f"{100 * matrix[i, j]:.0f}%",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if matrix[i, j] > 0.5 else "black",
                )
        axis.set(title=title, xticks=range(len(names)), yticks=range(len(names)), xlabel=columns, ylabel=rows)
        axis.set_xticklabels(names)
        axis.set_yticklabels(names)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def model_vs_human_plot(table: pd.DataFrame, path: Path) -> None:
    """Per class precision and recall against the reference annotator: model and human side by side."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    x = np.arange(len(table))
    for axis, measure in zip(axes, ("precision", "recall")):
        for offset, who, marker in ((-0.1, "model", "o"), (0.1, "human", "s")):
            axis.scatter(x + offset, table[f"{who} {measure}"], marker=marker, label=who, s=40)
        axis.set(title=measure, xticks=x, ylim=(0, 1.05))
        axis.set_xticklabels(table["class"])
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
