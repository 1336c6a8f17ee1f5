"""Smile intensity per frame (Neutral / Low / Medium / High) from ELAN smile levels: a study
track (held-out reports and a human comparison, no leaderboard file)."""

from __future__ import annotations

from challenge.finetune.loaders import detected_face_frames, face_crops
from challenge.frame_metrics import classification_score
from challenge.metrics import Score
from challenge.track import Problem, TrackSpec
from tracks.smiles.demo import write_smiles_demo
from tracks.smiles.intensity import run_smile_intensity
from tracks.smiles.labels import INTENSITY_CLASSES
from tracks.smiles.laughs import read_recordings


def score(truth, probabilities) -> Score:
    return classification_score(truth, probabilities, INTENSITY_CLASSES)


TRACK = TrackSpec(
    name="smile-intensity",
    title="Smile intensity per frame (macro F1, Cohen's kappa)",
    problem=Problem.FRAME_CLASSIFICATION,
    labels=INTENSITY_CLASSES,
    read=read_recordings,
    write_demo=write_smiles_demo,
    score=score,
    default_features=("mae",),
    default_head="gru",
    metric="macro F1 over intensity classes, held-out recordings",
    items="recordings",
    default_seeds=3,
    settings="smiles",  # clip length, folds, the zero-shot corpus...: tracks/smiles/settings.py
    run=run_smile_intensity,
    # cnn-gru's detected grey crops, cut as `challenge live` cuts them; vit-frames' colour faces
    media={"face-crops": face_crops, "faces": detected_face_frames},
    finetune_head="cnn-gru",
)
