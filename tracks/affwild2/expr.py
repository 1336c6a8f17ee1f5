"""Expression recognition (8 classes, macro F1) on the Aff-Wild2 layout."""

from __future__ import annotations

from challenge.frame_metrics import classification_score
from challenge.metrics import Score
from challenge.track import Problem
from tracks.affwild2.layout import affwild_track
from tracks.affwild2.reader import LABELS


def score(truth, outputs) -> Score:
    return classification_score(truth, outputs, LABELS["expr"].header)


TRACK = affwild_track(
    "expr",
    title="Expression recognition (8 classes, macro F1)",
    problem=Problem.FRAME_CLASSIFICATION,
    score=score,
    metric="macro F1 over 8 classes",
)
