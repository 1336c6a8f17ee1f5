"""Action Unit detection (12 AUs, mean F1) on the Aff-Wild2 layout."""

from __future__ import annotations

from functools import partial

from challenge.data.affwild import LABELS, read_affwild
from challenge.demo.affwild import write_affwild_demo
from challenge.frame_metrics import au_score
from tracks.base import Problem, Score, TrackSpec


def score(truth, outputs) -> Score:
    return au_score(truth, outputs, LABELS["au"].header)


TRACK = TrackSpec(
    name="au",
    title="Action Unit detection (12 AUs, mean F1)",
    problem=Problem.FRAME_MULTILABEL,
    labels=LABELS["au"].header,
    read=partial(read_affwild, track="au"),
    write_demo=write_affwild_demo,
    score=score,
    default_features=("mae", "wav2vec2"),
    default_head="transformer",
    metric="mean F1 over 12 AUs",
)
