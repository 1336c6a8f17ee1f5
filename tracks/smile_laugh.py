"""Laughs / Smiles / None per 1.2 s clip from ELAN-annotated dyadic recordings."""

from __future__ import annotations

from challenge.demo.smiles import write_smiles_demo
from challenge.smiles.labels import CLASSES
from tracks.base import Problem, TrackSpec


def _run(config):
    from challenge.smiles.laughs import run_smile_laugh

    return run_smile_laugh(config)


def _read(root, on_missing="error"):
    from challenge.errors import ChallengeError

    raise ChallengeError("smile-laugh reads ELAN corpora inside its own pipeline: use `challenge track smile-laugh --data DIR`.")


TRACK = TrackSpec(
    name="smile-laugh",
    title="Smiles / laughs / none per clip (macro F1)",
    problem=Problem.CLIP_CLASSIFICATION,
    labels=CLASSES,
    read=_read,
    write_demo=write_smiles_demo,
    default_features=("egemaps", "mae"),
    default_head="mlp-late-fusion",
    metric="macro F1 over laughs/smiles/none, held-out recordings",
    run=_run,
)
