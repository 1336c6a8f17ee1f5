"""A run's settings: YAML gives defaults, flags override, the resolved form is saved with the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from challenge.errors import ChallengeError

FEATURE_CHOICES = ("wav2vec2", "mae", "egemaps", "provided-wav2vec2", "provided-vit")


@dataclass
class RunConfig:
    """Everything a run depends on; saved with the run as resolved_config.yaml."""

    track: str
    data: str
    features: list[str] | None = None  # default: the track's default features
    audio_model: str = "facebook/wav2vec2-base"
    visual_model: str = "facebook/vit-mae-base"
    head: str | None = None  # default: the track's default head
    seed: int = 0
    tune: bool = False
    trials: int = 20
    timeout: float | None = None
    storage: str | None = None
    tracking_uri: str | None = None
    out: str | None = None
    device: str = "auto"
    epochs: int | None = None  # overrides the head's epoch budget (torch heads)
    shuffle_labels: bool = False  # control run: each clip or video trains on another one's labels
    skip_missing: bool = False
    store: str | None = None
    zero_shot: bool = False  # CE only: compound scores from an EXPR model trained on the same root
    # smiles and laughter tracks
    eval_data: str | None = None  # a second corpus, scored zero-shot
    scheme: str | None = None  # ELAN tier names and level spellings (YAML); default: the corpus's elan_scheme.yaml
    clip_length: float = 1.2  # smile-laugh clip windows, seconds
    clip_hop: float = 0.6
    subtle: str = "drop"  # smile-intensity: drop, keep (own class) or merge (into Low) the Subtle level
    window: int = 20  # smile-intensity: consecutive face frames per GRU window


@dataclass
class RunResult:
    run_id: str
    score: float
    details: dict[str, float]
    params: dict
    submission: Path | None
    trials_run: int = 0


def load_config(path: Path | None, flags: dict) -> RunConfig:
    """YAML gives defaults, flags (those not None) override."""
    values = {}
    if path is not None:
        if not Path(path).exists():
            raise ChallengeError(f"{path}: config file not found.")
        values = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(values) - set(RunConfig.__dataclass_fields__)
        if unknown:
            raise ChallengeError(f"{path}: unknown setting(s) {sorted(unknown)}; valid: {sorted(RunConfig.__dataclass_fields__)}")
    values.update({k: v for k, v in flags.items() if v is not None})
    config = RunConfig(**values)
    from tracks import get_track

    spec = get_track(config.track)
    config.features = config.features or list(spec.default_features)
    config.head = config.head or spec.default_head
    bad = [f for f in config.features if f not in FEATURE_CHOICES]
    if bad:
        raise ChallengeError(f"unknown feature set(s) {bad}; choose from {', '.join(FEATURE_CHOICES)}")
    return config
