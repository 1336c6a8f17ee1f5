"""Expression recognition (8 classes, macro F1) on the Aff-Wild2 layout."""

from __future__ import annotations

from functools import partial

from challenge.data.affwild import LABELS, read_affwild
from challenge.demo.affwild import write_affwild_demo
from challenge.frame_metrics import classification_score
from tracks.base import Problem, Score, TrackSpec


def score(truth, outputs) -> Score:
    return classification_score(truth, outputs, LABELS["expr"].header)


TRACK = TrackSpec(
    name="expr",
    title="Expression recognition (8 classes, macro F1)",
    problem=Problem.FRAME_CLASSIFICATION,
    labels=LABELS["expr"].header,
    read=partial(read_affwild, track="expr"),
    write_demo=write_affwild_demo,
    score=score,
    default_features=("mae", "wav2vec2"),
    default_head="transformer",
    metric="macro F1 over 8 classes",
)
