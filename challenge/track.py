"""What a track is, as data: the bottom of the framework. Tracks (the `tracks/` package, or a
team's own package) build `TrackSpec`s on these types; runs receive one and never look one up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry reads these types to list tracks; numpy waits until a track is used
    import numpy as np

    from challenge.metrics import Score


class Problem(str, Enum):
    """The head's activation and loss follow from the problem, never from the track."""

    CLIP_REGRESSION = "clip-regression"  # EMI: [C] intensities per clip
    FRAME_CLASSIFICATION = "frame-classification"  # EXPR, CE, smile intensity
    FRAME_MULTILABEL = "frame-multilabel"  # AU
    FRAME_REGRESSION = "frame-regression"  # VA
    CLIP_CLASSIFICATION = "clip-classification"  # smiles / laughs / none

    @property
    def per_frame(self) -> bool:
        return self.value.startswith("frame-")


@dataclass(frozen=True)
class ZeroShot:
    """Train on another track's labels, turn its outputs into this track's (CE from EXPR)."""

    source: TrackSpec  # the track whose labels the head learns
    transform: Callable[[np.ndarray], np.ndarray]  # source outputs [frames, C_source] -> this track's [frames, C]
    read: Callable[..., object]  # root -> this track's Samples, labels optional (the test videos have none)

    def wrap(self, source_head) -> ZeroShotHead:
        return ZeroShotHead(source_head, self.transform)


class ZeroShotHead:
    """A source-track head (EXPR) whose per-frame outputs become this track's (compounds). Saved
    as its source head; the transform is the track's, applied again when it is read."""

    def __init__(self, source_head, transform):
        self.source_head, self.transform = source_head, transform
        self.history = source_head.history
        self.name, self.params = source_head.name, source_head.params

    def predict(self, data):
        return [self.transform(outputs) for outputs in self.source_head.predict(data)]


@dataclass(frozen=True)
class TrackSpec:
    name: str
    title: str
    problem: Problem
    labels: list[str]
    read: Callable[..., object]  # (dataset root, on_missing="error"|"skip") -> Samples
    write_demo: Callable[..., dict]  # (root, seed=..., sizes...) -> counts per split
    score: Callable[[np.ndarray, np.ndarray], Score] | None = None  # (truth, outputs) -> Score
    metric: str = "score"  # how the score is named in messages
    direction: str = "maximize"
    # (dataset root, run folder, test ids, decided predictions) -> the written file, validated;
    # a clip classification track gets its class probabilities after the decision rule
    # (PostProcess.calibrate: the decision is their argmax), since some files hold both
    write_submission: Callable[[Path, Path, list[str], object], Path] | None = None
    # (dataset root, submission file, test ids) -> problems found (empty when valid)
    validate_submission: Callable[[Path, Path, list[str]], list[str]] | None = None
    # frame tracks: dataset root -> frames per test video (the organisers' sample file)
    test_frames: Callable[[Path], dict[str, int]] | None = None
    default_features: tuple[str, ...] = ("wav2vec2",)
    default_head: str = "lstm"
    items: str = "clips"  # what one sample is, in messages: clips, videos, recordings
    zero_shot: ZeroShot | None = None
    default_seeds: int = 1  # --seeds when not given: small study tracks repeat their runs (mean ± sd)
    # a study track without a leaderboard file (the smiles tracks) runs this pipeline instead of
    # the shared runner: (spec, RunConfig) -> RunResult; it still takes its model from the heads
    run: Callable[..., object] | None = None
    # the media loaders the track supplies to end-to-end heads, by medium ("audio", "faces"):
    # (samples of one split, frames per video or None) -> the head's data (challenge.finetune.loaders);
    # a study track's own pipeline may pass what its items are (smile-laugh: corpus and clips)
    media: dict[str, Callable[..., object]] = field(default_factory=dict)
    finetune_head: str | None = None  # the end-to-end head `--finetune` picks
    # a study track's own settings section of the run config: the name of its
    # `challenge.track_settings` entry point (the smiles tracks: "smiles")
    settings: str | None = None
    # the group a sample belongs to, from its id (BAH: the participant, 7 videos each): folds,
    # estimates and ensembles keep a group on one side; None: every sample is its own group
    group_of: Callable[[str], str] | None = None

    def groups(self, ids) -> list[str]:
        return [self.group_of(i) if self.group_of else str(i) for i in ids]
