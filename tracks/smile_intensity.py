"""Smile intensity per frame (Neutral / Low / Medium / High) from ELAN smile levels."""

from __future__ import annotations

from challenge.demo.smiles import write_smiles_demo
from challenge.smiles.labels import INTENSITY_CLASSES
from tracks.base import Problem, TrackSpec
from tracks.smile_laugh import _read


def _run(config):
    from challenge.smiles.intensity import run_smile_intensity

    return run_smile_intensity(config)


TRACK = TrackSpec(
    name="smile-intensity",
    title="Smile intensity per frame (macro F1, Cohen's kappa)",
    problem=Problem.FRAME_CLASSIFICATION,
    labels=INTENSITY_CLASSES,
    read=_read,
    write_demo=write_smiles_demo,
    default_features=("mae",),
    default_head="gru",
    metric="macro F1 over intensity classes, held-out recordings",
    run=_run,
)
