"""Compound Expression recognition (7 classes, macro F1) on the Aff-Wild2 layout; `--zero-shot`
trains on EXPR labels of the same root and turns the basic expressions into compounds."""

from __future__ import annotations

from functools import partial

import numpy as np

from challenge.frame_metrics import classification_score
from challenge.metrics import Score
from challenge.track import Problem, ZeroShot
from tracks.affwild2 import expr
from tracks.affwild2.layout import affwild_track
from tracks.affwild2.reader import CE_PARTS, LABELS, read_affwild


def score(truth, outputs) -> Score:
    return classification_score(truth, outputs, LABELS["ce"].header)


def zero_shot_from_expr(expr_probabilities: np.ndarray) -> np.ndarray:
    """The documented zero-shot rule: a compound's score is the product of its two basic
    expressions' probabilities from an EXPR model, renormalised over the 7 compounds."""
    scores = np.stack([expr_probabilities[:, a] * expr_probabilities[:, b] for a, b in CE_PARTS.values()], axis=1)
    return scores / np.maximum(scores.sum(1, keepdims=True), 1e-12)


TRACK = affwild_track(
    "ce",
    title="Compound Expression recognition (7 classes, macro F1)",
    problem=Problem.FRAME_CLASSIFICATION,
    score=score,
    metric="macro F1 over 7 classes",
    zero_shot=ZeroShot(
        source=expr.TRACK, transform=zero_shot_from_expr, read=partial(read_affwild, track="ce", on_missing="skip", require_labels=False)
    ),
)
