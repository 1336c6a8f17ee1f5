"""Ambivalence/Hesitancy (BAH): one label per video, macro F1 over the two classes, with the
average precision of class 1 beside it (the organisers' metric code reports both)."""

from __future__ import annotations

import numpy as np

from challenge.finetune.loaders import waveform_clips
from challenge.metrics import Score
from challenge.track import Problem, TrackSpec
from submissions.bah import check_trial, write_trial
from tracks.bah.demo import write_bah_demo
from tracks.bah.reader import LABELS, participant, read_bah


def score(truth: np.ndarray, probabilities: np.ndarray) -> Score:
    """Macro F1 of the argmax decisions (class 1 when p1 > p0) and AP of class 1."""
    from sklearn.metrics import average_precision_score, f1_score

    truth = np.asarray(truth).reshape(-1).astype(int)
    probabilities = np.asarray(probabilities, np.float64)
    decided = (probabilities[:, 1] > probabilities[:, 0]).astype(int)
    per_class = f1_score(truth, decided, labels=[0, 1], average=None, zero_division=0.0)
    ap = average_precision_score(truth, probabilities[:, 1]) if 0 < truth.sum() < len(truth) else float("nan")
    return Score(float(per_class.mean()), {"F1 no A/H": float(per_class[0]), "F1 A/H": float(per_class[1]), "AP A/H": float(ap)})


TRACK = TrackSpec(
    name="ah",
    title="Ambivalence/Hesitancy (BAH, one label per video, macro F1)",
    problem=Problem.CLIP_CLASSIFICATION,
    labels=LABELS,
    read=read_bah,
    write_demo=write_bah_demo,
    score=score,
    metric="macro F1 over 2 classes",
    write_submission=write_trial,
    validate_submission=check_trial,
    default_features=("text", "egemaps", "fer"),
    default_head="lstm",
    items="videos",
    group_of=participant,
    media={"audio": waveform_clips},
    finetune_head="wav2vec2-lstm",
)
