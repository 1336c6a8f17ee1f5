"""Laughs / Smiles / None per 1.2 s clip from ELAN-annotated dyadic recordings: a study track
(held-out and zero-shot reports, no leaderboard file)."""

from __future__ import annotations

from challenge.metrics import Score
from challenge.track import Problem, TrackSpec
from tracks.smiles.clip_media import clip_audio_visual, clip_waveforms
from tracks.smiles.demo import write_smiles_demo
from tracks.smiles.labels import CLASSES
from tracks.smiles.laughs import present_macro_f1_of_probabilities, read_recordings, run_smile_laugh


def score(truth, probabilities) -> Score:
    """Macro F1 over the classes present in this truth (a corpus without smiles is not capped at 2/3)."""
    return Score(present_macro_f1_of_probabilities(truth, probabilities))


TRACK = TrackSpec(
    name="smile-laugh",
    title="Smiles / laughs / none per clip (macro F1)",
    problem=Problem.CLIP_CLASSIFICATION,
    labels=CLASSES,
    read=read_recordings,
    write_demo=write_smiles_demo,
    score=score,
    # ComParE beside YAMNet's AudioSet scores: ComParE alone flips on the telephone pair, where the
    # laugh's pitch relative to the talker reverses; the pair holds zero-shot on both real pairs
    # (tests/test_smiles.py, README "cross-corpus")
    default_features=("compare", "yamnet", "mae"),
    default_head="mlp-late-fusion",
    metric="macro F1 over the classes present, mean over seeds; held-out recordings, else cross-validated",
    items="recordings",
    default_seeds=3,
    settings="smiles",  # clip length, folds, the zero-shot corpus...: tracks/smiles/settings.py
    run=run_smile_laugh,
    # end-to-end heads read the clips' spans of each recording: (corpus, clips) -> the head's data
    media={"audio": clip_waveforms, "audio-visual": clip_audio_visual},
    finetune_head="wav2vec2-lstm",
)
