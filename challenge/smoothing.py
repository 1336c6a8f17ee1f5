"""Gaussian temporal smoothing of per-frame outputs within each video, sigma tuned on validation.

Probabilities (EXPR, AU, CE) or values (VA) are smoothed before the decision; smoothing never
crosses from one video into the next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d

DEFAULT_SIGMAS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # in frames


def smooth_videos(values: np.ndarray, lengths: Sequence[int], sigma: float) -> np.ndarray:
    """`values` [sum(lengths), C] holds the videos one after another; each is smoothed alone."""
    if sigma <= 0:
        return values.copy()
    out, start = np.empty_like(values, dtype=np.float64), 0
    for length in lengths:
        part = values[start : start + length]
        # "nearest" repeats the edge frames instead of pulling the ends towards zero
        out[start : start + length] = gaussian_filter1d(part.astype(np.float64), sigma, axis=0, mode="nearest")
        start += length
    return out.astype(values.dtype)


def tune_sigma(
    score: Callable[[np.ndarray], float],
    values: np.ndarray,
    lengths: Sequence[int],
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
) -> tuple[float, dict[float, float]]:
    """The sigma whose smoothed outputs score best (`score` maps outputs to the track's score);
    returns it with every sigma's score, sigma 0 (no smoothing) included for the record."""
    scores = {float(s): score(smooth_videos(values, lengths, s)) for s in sigmas}
    best = max(scores, key=lambda s: (scores[s], -s))  # ties go to the lighter smoothing
    return best, scores
