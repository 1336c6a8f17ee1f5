"""Compound Expression recognition (7 classes, macro F1) on the Aff-Wild2 layout."""

from __future__ import annotations

from functools import partial

import numpy as np

from challenge.data.affwild import CE_PARTS, LABELS, read_affwild
from challenge.demo.affwild import write_affwild_demo
from challenge.frame_metrics import classification_score
from tracks.base import Problem, Score, TrackSpec


def score(truth, outputs) -> Score:
    return classification_score(truth, outputs, LABELS["ce"].header)


TRACK = TrackSpec(
    name="ce",
    title="Compound Expression recognition (7 classes, macro F1)",
    problem=Problem.FRAME_CLASSIFICATION,
    labels=LABELS["ce"].header,
    read=partial(read_affwild, track="ce"),
    write_demo=write_affwild_demo,
    score=score,
    default_features=("mae", "wav2vec2"),
    default_head="transformer",
    metric="macro F1 over 7 classes",
)


def zero_shot_from_expr(expr_probabilities: np.ndarray) -> np.ndarray:
    """The documented zero-shot rule: a compound's score is the product of its two basic
    expressions' probabilities from an EXPR model, renormalised over the 7 compounds."""
    scores = np.stack([expr_probabilities[:, a] * expr_probabilities[:, b] for a, b in CE_PARTS.values()], axis=1)
    return scores / np.maximum(scores.sum(1, keepdims=True), 1e-12)
