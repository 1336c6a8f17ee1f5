"""Action Unit detection (12 AUs, mean F1) on the Aff-Wild2 layout."""

from __future__ import annotations

from challenge.frame_metrics import au_score
from challenge.metrics import Score
from challenge.track import Problem
from tracks.affwild2.layout import affwild_track
from tracks.affwild2.reader import LABELS


def score(truth, outputs) -> Score:
    return au_score(truth, outputs, LABELS["au"].header)


TRACK = affwild_track(
    "au",
    title="Action Unit detection (12 AUs, mean F1)",
    problem=Problem.FRAME_MULTILABEL,
    score=score,
    metric="mean F1 over 12 AUs",
)
