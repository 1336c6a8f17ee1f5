"""The one normaliser: per-dimension mean and std fitted on training rows, applied to every
split, saved with the model so prediction normalises exactly as training did."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class Normaliser:
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, blocks: Iterable[np.ndarray]) -> Normaliser:
        """Streams over [rows, D] blocks (clips, videos, pooled tables): memory stays one block."""
        total = total_sq = None
        count = 0
        for block in blocks:
            block = np.asarray(block, np.float64).reshape(-1, np.shape(block)[-1])
            total = block.sum(0) if total is None else total + block.sum(0)
            total_sq = (block**2).sum(0) if total_sq is None else total_sq + (block**2).sum(0)
            count += len(block)
        if total is None or count == 0:
            raise ValueError("no rows to fit a normaliser on")
        mean = total / count
        return cls(mean.astype(np.float32), (np.sqrt(np.maximum(total_sq / count - mean**2, 0)) + 1e-6).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> Normaliser:
        return cls(np.asarray(state["mean"], np.float32), np.asarray(state["std"], np.float32))
