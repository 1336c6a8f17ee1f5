"""What a track is: its data, labels, metric and submission format, as data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from challenge.metrics import Score  # noqa: F401  (part of a track's interface)


class Problem(str, Enum):
    """The head's activation and loss follow from the problem, never from the track."""

    CLIP_REGRESSION = "clip-regression"  # EMI: [C] intensities per clip
    FRAME_CLASSIFICATION = "frame-classification"  # EXPR, CE
    FRAME_MULTILABEL = "frame-multilabel"  # AU
    FRAME_REGRESSION = "frame-regression"  # VA
    CLIP_CLASSIFICATION = "clip-classification"  # smiles / laughs / none


@dataclass(frozen=True)
class TrackSpec:
    name: str
    title: str
    problem: Problem
    labels: list[str]
    read: Callable[[Path], object]  # dataset root -> Samples
    write_demo: Callable[..., dict]  # (root, seed=..., sizes...) -> counts per split
    score: Callable[[np.ndarray, np.ndarray], Score] | None = None  # (truth, prediction) -> Score
    direction: str = "maximize"
    write_submission: Callable[[Path, list[str], np.ndarray], Path] | None = None  # validates what it writes
    validate_submission: Callable[[Path, list[str]], list[str]] | None = None  # (file, test ids) -> problems
    default_features: tuple[str, ...] = ("wav2vec2",)
    default_head: str = "lstm"
    metric: str = "score"  # how the score is named in messages
    # a track with its own pipeline (the smiles studies: no leaderboard file) runs this instead
    # of the shared runner: RunConfig -> RunResult
    run: Callable[..., object] | None = None
