"""Putting per-step features on a video's frame axis.

Visual features of crop folders are indexed by frame number; frames without a crop (no face
detected) get the features of the nearest frame that has one, and are flagged. Audio features
(50 Hz wav2vec2, 100 Hz eGeMAPS) are sampled at each frame's time in the video.
"""

from __future__ import annotations

import numpy as np


def visual_on_frames(array: np.ndarray, index: list[int], n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """([n_frames, D] features, [n_frames] bool: True where filled from a neighbour)."""
    index = np.asarray(index)
    keep = (index >= 1) & (index <= n_frames)
    index, rows = index[keep], np.asarray(array)[keep]
    if len(index) == 0:
        return np.zeros((n_frames, np.asarray(array).shape[1]), np.float32), np.ones(n_frames, bool)
    frames = np.arange(1, n_frames + 1)
    # nearest available frame: position among the sorted indices, then the closer side
    order = np.argsort(index)
    index, rows = index[order], rows[order]
    right = np.clip(np.searchsorted(index, frames), 0, len(index) - 1)
    left = np.clip(right - 1, 0, len(index) - 1)
    nearest = np.where(np.abs(index[left] - frames) <= np.abs(index[right] - frames), left, right)
    filled = index[nearest] != frames
    return np.asarray(rows[nearest], np.float32), filled


def audio_on_frames(array: np.ndarray, step_rate: float, n_frames: int, fps: float) -> np.ndarray:
    """Row of the audio step at each frame's start time, (i - 1) / fps for frame i."""
    times = np.arange(n_frames) / fps
    steps = np.minimum(np.round(times * step_rate).astype(int), len(array) - 1)
    return np.asarray(array[steps], np.float32)
