"""Valence-Arousal estimation (mean CCC) on the Aff-Wild2 layout."""

from __future__ import annotations

from functools import partial

from challenge.data.affwild import LABELS, read_affwild
from challenge.demo.affwild import write_affwild_demo
from challenge.frame_metrics import va_score
from tracks.base import Problem, Score, TrackSpec


def score(truth, outputs) -> Score:
    return va_score(truth, outputs)


TRACK = TrackSpec(
    name="va",
    title="Valence-Arousal estimation (mean CCC)",
    problem=Problem.FRAME_REGRESSION,
    labels=LABELS["va"].header,
    read=partial(read_affwild, track="va"),
    write_demo=write_affwild_demo,
    score=score,
    default_features=("mae", "wav2vec2"),
    default_head="transformer",
    metric="mean CCC of valence and arousal",
)
