"""A run's settings: YAML gives defaults, flags override, the resolved form is saved with the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from challenge.errors import ChallengeError
from challenge.track import TrackSpec

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


DATASET_DEFAULTS = "challenge.yaml"  # beside a dataset: its own defaults (the demo data names its stand-in models there)
_PATH_SETTINGS = ("audio_model", "visual_model", "scheme")


def _read_settings(path: Path) -> dict:
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as error:
        raise ChallengeError(f"{path}: not valid YAML ({error}).") from error
    if not isinstance(values, dict):
        raise ChallengeError(f"{path}: expected 'setting: value' lines, found {type(values).__name__}.")
    unknown = set(values) - set(RunConfig.__dataclass_fields__)
    if unknown:
        raise ChallengeError(f"{path}: unknown setting(s) {sorted(unknown)}; valid: {sorted(RunConfig.__dataclass_fields__)}")
    return values


def dataset_defaults(data: str | None) -> dict:
    """`<data>/challenge.yaml`: settings that belong to a dataset. Relative model and scheme
    paths in it are relative to the dataset, so the folder can move."""
    path = Path(data) / DATASET_DEFAULTS if data else None
    if path is None or not path.is_file():
        return {}
    values = {k: v for k, v in _read_settings(path).items() if k not in ("track", "data")}
    for key in _PATH_SETTINGS:
        if isinstance(values.get(key), str) and (path.parent / values[key]).exists():
            values[key] = str((path.parent / values[key]).resolve())
    from challenge.progress import say

    say(f"[dim]dataset defaults from {path}: {', '.join(f'{k}={v}' for k, v in values.items())}[/]")
    return values


def load_config(path: Path | None, flags: dict, spec: TrackSpec) -> RunConfig:
    """Lowest to highest: RunConfig's defaults, the dataset's challenge.yaml, the --config YAML,
    flags (those not None); the track's default features and head fill what is left."""
    values = {}
    if path is not None:
        if not Path(path).exists():
            raise ChallengeError(f"{path}: config file not found.")
        values = _read_settings(Path(path))
    values.update({k: v for k, v in flags.items() if v is not None})
    values = dataset_defaults(values.get("data")) | values
    config = RunConfig(**values)
    config.features = config.features or list(spec.default_features)
    config.head = config.head or spec.default_head
    bad = [f for f in config.features if f not in FEATURE_CHOICES]
    if bad:
        raise ChallengeError(f"unknown feature set(s) {bad}; choose from {', '.join(FEATURE_CHOICES)}")
    return config
