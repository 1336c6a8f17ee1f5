"""Emotional Mimicry Intensity (Hume-Vidmimic2): six intensities per clip, mean Pearson."""

from __future__ import annotations

import numpy as np

from challenge.finetune.loaders import audio_visual_clips, waveform_clips
from challenge.metrics import Score, mean_pearson
from challenge.track import Problem, TrackSpec
from submissions.emi import check_emi, submit_emi
from tracks.hume.demo import write_emi_demo
from tracks.hume.reader import EMOTIONS, read_hume


def score(truth: np.ndarray, prediction: np.ndarray) -> Score:
    value, per_emotion = mean_pearson(truth, prediction)
    return Score(value, dict(zip(EMOTIONS, per_emotion)))


TRACK = TrackSpec(
    name="emi",
    title="Emotional Mimicry Intensity",
    problem=Problem.CLIP_REGRESSION,
    labels=EMOTIONS,
    read=read_hume,
    write_demo=write_emi_demo,
    score=score,
    write_submission=submit_emi,
    validate_submission=check_emi,
    default_features=("wav2vec2",),
    default_head="lstm",
    metric="mean Pearson over 6 emotions",
    media={"audio": waveform_clips, "audio-visual": audio_visual_clips},  # wav2vec2-lstm; social-mae-clips
    finetune_head="wav2vec2-lstm",
)
