"""Fine-grained violence detection (DVD): a label per frame, macro F1 over the two classes over
all frames, on whole-scene features (challenge.features.scene: `scene`, `motion`)."""

from __future__ import annotations

from pathlib import Path

from challenge.frame_metrics import classification_score
from challenge.metrics import Score
from challenge.track import Problem, TrackSpec
from submissions.dvd import validate_zip, write_zip
from tracks.dvd.demo import write_dvd_demo
from tracks.dvd.reader import LABELS, read_dvd, test_frames


def score(truth, outputs) -> Score:
    return classification_score(truth, outputs, LABELS)


def check(root: Path, path: Path, ids: list[str]) -> list[str]:
    frames = test_frames(root)
    return validate_zip(path, {video: frames[video] for video in ids})


TRACK = TrackSpec(
    name="vd",
    title="Violence detection (DVD, a label per frame, macro F1)",
    problem=Problem.FRAME_CLASSIFICATION,
    labels=LABELS,
    read=read_dvd,
    write_demo=write_dvd_demo,
    score=score,
    metric="macro F1 over 2 classes, all frames",
    write_submission=write_zip,
    validate_submission=check,
    test_frames=test_frames,
    default_features=("scene", "motion"),
    default_head="tcn",
    items="videos",
)
