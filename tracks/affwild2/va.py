"""Valence-Arousal estimation (mean CCC) on the Aff-Wild2 layout."""

from __future__ import annotations

from challenge.frame_metrics import va_score
from challenge.track import Problem
from tracks.affwild2.layout import affwild_track

TRACK = affwild_track(
    "va",
    title="Valence-Arousal estimation (mean CCC)",
    problem=Problem.FRAME_REGRESSION,
    score=va_score,
    metric="mean CCC of valence and arousal",
)
