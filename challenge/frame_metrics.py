"""Frame-level scores exactly as the organisers compute them, invalid frames excluded.

Outputs are what the head produces and smoothing works on: class probabilities (EXPR, CE),
AU probabilities, or VA values; the decision (argmax, threshold) happens here.
"""

from __future__ import annotations

import numpy as np

from challenge.metrics import Score, ccc, macro_f1, mean_binary_f1

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def classification_score(truth: np.ndarray, probabilities: np.ndarray, names: list[str]) -> Score:
    """Macro F1 over `len(names)` classes; frames labelled -1 are excluded."""
    labels = truth.reshape(-1).astype(int)
    valid = labels >= 0
    decisions = probabilities.argmax(1)
    return Score(macro_f1(labels[valid], decisions[valid], len(names)), {})


def va_score(truth: np.ndarray, values: np.ndarray) -> Score:
    """(CCC valence + CCC arousal) / 2 over frames annotated in that dimension (not -5)."""
    per_dim = [ccc(truth[truth[:, j] != -5, j], values[truth[:, j] != -5, j]) for j in range(2)]
    return Score(float(np.mean(per_dim)), {"valence": per_dim[0], "arousal": per_dim[1]})


def au_score(truth: np.ndarray, probabilities: np.ndarray, names: list[str], thresholds: np.ndarray | None = None) -> Score:
    """Mean F1 over the AUs at per-AU thresholds (0.5 unless given); rows holding -1 excluded."""
    valid = ~(truth == -1).any(1)
    thresholds = np.full(truth.shape[1], 0.5) if thresholds is None else np.asarray(thresholds)
    value, per_au = mean_binary_f1(truth[valid].astype(int), (probabilities[valid] >= thresholds).astype(int))
    return Score(value, dict(zip(names, per_au)))


def tune_au_thresholds(truth: np.ndarray, probabilities: np.ndarray, grid: np.ndarray = THRESHOLD_GRID) -> np.ndarray:
    """Per-AU threshold maximising that AU's F1 on validation (ties: the one nearest 0.5)."""
    valid = ~(truth == -1).any(1)
    y = truth[valid].astype(bool)[:, None, :]  # [N, 1, AUs]
    decided = probabilities[valid][:, None, :] >= grid[None, :, None]  # [N, thresholds, AUs]
    tp = (decided & y).sum(0)
    f1 = 2 * tp / np.maximum(decided.sum(0) + y.sum(0), 1)  # [thresholds, AUs]
    nearest_half = np.argsort(np.abs(grid - 0.5), kind="stable")
    return np.array([grid[nearest_half[np.argmax(f1[nearest_half, j])]] for j in range(truth.shape[1])])
