"""The one windowing rule of prediction: half-overlapping windows covering a sequence, the last
one flush with its end; every step's output is the mean over the windows that hold it."""

from __future__ import annotations


def window_starts(steps: int, window: int) -> list[int]:
    """Start indices of half-overlapping windows of `window` steps over `steps` steps."""
    last = max(steps - window, 0)
    return sorted({*range(0, last + 1, max(1, window // 2)), last})
