"""Laughs / Smiles / None per 1.2 s clip from ELAN-annotated dyadic recordings: a study track
(held-out and zero-shot reports, no leaderboard file)."""

from __future__ import annotations

from challenge.demo.smiles import write_smiles_demo
from challenge.frame_metrics import classification_score
from challenge.metrics import Score
from challenge.smiles.labels import CLASSES
from challenge.smiles.laughs import read_recordings, run_smile_laugh
from challenge.track import Problem, TrackSpec


def score(truth, probabilities) -> Score:
    return classification_score(truth, probabilities, CLASSES)


TRACK = TrackSpec(
    name="smile-laugh",
    title="Smiles / laughs / none per clip (macro F1)",
    problem=Problem.CLIP_CLASSIFICATION,
    labels=CLASSES,
    read=read_recordings,
    write_demo=write_smiles_demo,
    score=score,
    default_features=("egemaps", "mae"),
    default_head="mlp-late-fusion",
    metric="macro F1 over laughs/smiles/none, held-out recordings",
    items="recordings",
    run=run_smile_laugh,
)
