"""The shuffled-label control, one rule for every track: each training item (clip, video or
recording) takes the labels of another item, never its own. A plain permutation would leave
some items their own labels (with few videos, often), and the control would then learn."""

from __future__ import annotations

import numpy as np


def derangement(n: int, seed: int) -> np.ndarray:
    """source[i] != i for every i (n >= 2): items in a random cycle, each taking its predecessor's."""
    order = np.random.default_rng(seed).permutation(n)
    source = np.empty_like(order)
    source[order] = np.roll(order, 1)
    return source


def shuffled(labels, seed: int):
    """An array of per-item labels (rows) or a list of per-item sequences; a sequence taken from
    another item is cut or repeated to the receiving item's length."""
    source = derangement(len(labels), seed)
    if isinstance(labels, np.ndarray):
        return labels[source]
    return [np.resize(labels[j], np.shape(labels[i])) for i, j in enumerate(source)]
