"""A run's settings as a typed, nested schema (pydantic): the dataset's challenge.yaml gives the
lowest layer, a --config YAML the next, flags the top; every layer is type-checked and an
unknown or mistyped setting is an error naming the file and the setting. The resolved form is
saved with the run as resolved_config.yaml.

    features: [wav2vec2, egemaps]      # which extractors, in order
    extractors:                        # one section per extractor, its dataclass's fields
      wav2vec2: {model: /models/wav2vec2-base, layer: 6}
      mae: {model: /models/mae-face, frame_step: 2}
    head: lstm
    smiles: {clip_length: 1.2, subtle: merge}

`--audio-model` and `--visual-model` (the one spelling of the model option, in every command)
set `extractors.wav2vec2.model` and `extractors.mae.model`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt, ValidationError, field_validator

from challenge.errors import ChallengeError
from challenge.finetune.settings import FinetuneSettings
from challenge.track import TrackSpec

FEATURE_CHOICES = ("wav2vec2", "mae", "egemaps", "compare", "face-crops", "fer", "provided-wav2vec2", "provided-vit")
MODEL_FLAGS = {"audio_model": "wav2vec2", "visual_model": "mae"}  # flag -> extractor whose `model` it sets


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SmilesSettings(Settings):
    """The smiles-and-laughter tracks' own settings."""

    eval_data: str | None = None  # smile-laugh: a second corpus, scored zero-shot
    scheme: str | None = None  # ELAN tier names and level spellings (YAML); default: the corpus's elan_scheme.yaml
    clip_length: PositiveFloat = 1.2  # smile-laugh clip windows, seconds
    clip_hop: PositiveFloat = 0.6
    subtle: Literal["drop", "keep", "merge"] = "drop"  # smile-intensity: the Subtle level dropped, own class, or merged into Low
    folds: PositiveInt = 5  # smiles tracks: grouped cross-validation folds over the training recordings (speakers); smile-intensity: 1 = the valid split
    both_ways: bool = False  # smile-laugh: also train on eval_data and score zero-shot on data
    corpus_norm: bool = True  # smile-laugh: standardise the zero-shot corpus's features with its own statistics
    # smile-laugh: the statistics of each feature over a clip that the model reads (the baseline keeps mean and std)
    pooling: list[Literal["mean", "std", "p10", "p90"]] = Field(default_factory=lambda: ["mean", "std", "p10", "p90"], min_length=1)


class RunConfig(Settings):
    """Everything a run depends on."""

    track: str
    data: str | None = None
    features: list[str] | None = None  # default: the track's default features
    extractors: dict[str, dict[str, Any]] = Field(default_factory=dict)  # extractor name -> its settings
    head: str | None = None  # default: the track's default head
    seed: int = 0
    seeds: PositiveInt | None = None  # repeats with seeds seed, seed+1, ...; mean ± sd of every figure (default: the track's)
    tune: bool = False
    trials: PositiveInt = 20
    timeout: PositiveFloat | None = None
    storage: str | None = None
    head_params: dict[str, Any] = Field(default_factory=dict)  # head parameters the run fixes (tuning leaves them): e.g. {loss: focal, focal_gamma: 2}
    estimate_folds: NonNegativeInt = 3  # a tuned clip run refits its parameters and the baseline on K folds of train+valid (0: off)
    worker: NonNegativeInt | None = None  # this process's index among the workers sharing the study (its sampler seed); None: claim a free one
    tracking_uri: str | None = None
    out: str | None = None
    device: str = "auto"
    epochs: PositiveInt | None = None  # overrides the head's epoch budget (torch heads)
    window: PositiveInt | None = None  # overrides the frames per window of per-frame heads
    shuffle_labels: bool = False  # control run: each clip or video trains on another one's labels
    skip_missing: bool = False
    store: str | None = None
    zero_shot: bool = False  # tracks with a zero-shot rule (ce): train on the source track's labels
    smiles: SmilesSettings = Field(default_factory=SmilesSettings)
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)

    @field_validator("features")
    @classmethod
    def _known_features(cls, value):
        bad = [f for f in value or [] if f not in FEATURE_CHOICES]
        if bad:
            raise ValueError(f"unknown feature set(s) {bad}; choose from {', '.join(FEATURE_CHOICES)}")
        return value

    @field_validator("extractors")
    @classmethod
    def _extractor_sections(cls, sections):
        """Each section must name an extractor and hold its dataclass's fields, with their types."""
        from pydantic import TypeAdapter

        from challenge.features import EXTRACTORS

        for name, settings in sections.items():
            if name not in EXTRACTORS:
                raise ValueError(f"extractors.{name}: no such extractor; choose from {', '.join(sorted(EXTRACTORS))}")
            try:
                TypeAdapter(EXTRACTORS[name]).validate_python(settings)
            except ValidationError as error:
                raise ValueError("; ".join(f"{name}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())) from None
        return sections

    def extractor_settings(self, name: str) -> dict[str, Any]:
        return dict(self.extractors.get(name, {}))


@dataclass
class RunResult:
    run_id: str
    score: float
    details: dict[str, float]
    params: dict
    submission: Path | None
    trials_run: int = 0
    baseline: object | None = None  # challenge.baseline.Baseline: the linear model on the same split and features
    estimate: object | None = None  # challenge.estimate.Estimate: a tuned run's figures that selected nothing
    seeds: int = 1  # a seeds run (challenge.protocols.over_seeds): its score and details are means over this many


DATASET_DEFAULTS = "challenge.yaml"  # beside a dataset: its own defaults (the demo data names its stand-in models there)


def _read_settings(path: Path) -> dict:
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as error:
        raise ChallengeError(f"{path}: not valid YAML ({error}).") from error
    if not isinstance(values, dict):
        raise ChallengeError(f"{path}: expected 'setting: value' lines, found {type(values).__name__}.")
    return values


def _merge(low: dict, high: dict) -> dict:
    """Nested sections merge key by key; a higher layer's value wins."""
    out = dict(low)
    for key, value in high.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _check(values: dict, where: str) -> None:
    """Type-check one layer on its own, so an error names the file (or flags) it came from."""
    old = [key for key in MODEL_FLAGS if key in values and where != "flags"]
    if old:  # the flat spelling of earlier versions
        raise ChallengeError(f"{where}: {', '.join(old)} is now written as a model inside its extractor's section: "
                             + "; ".join(f"extractors: {{{MODEL_FLAGS[k]}: {{model: {values[k]}}}}}" for k in old)
                             + " (demo data: run `challenge demo-data` again to rewrite the file).")
    try:
        RunConfig.model_validate({"track": "-", **values})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in error.errors())
        raise ChallengeError(f"{where}: {problems}. Valid settings: {', '.join(RunConfig.model_fields)}.") from None


def dataset_defaults(data: str | None) -> dict:
    """`<data>/challenge.yaml`: settings that belong to a dataset. Relative model and scheme
    paths in it are relative to the dataset, so the folder can move."""
    path = Path(data) / DATASET_DEFAULTS if data else None
    if path is None or not path.is_file():
        return {}
    values = {k: v for k, v in _read_settings(path).items() if k not in ("track", "data")}
    _check(values, str(path))
    for section in values.get("extractors", {}).values():
        if isinstance(section.get("model"), str) and (path.parent / section["model"]).exists():
            section["model"] = str((path.parent / section["model"]).resolve())
    smiles = values.get("smiles", {})
    if isinstance(smiles.get("scheme"), str) and (path.parent / smiles["scheme"]).exists():
        smiles["scheme"] = str((path.parent / smiles["scheme"]).resolve())
    from challenge.progress import say

    say(f"[dim]dataset defaults from {path}: {yaml.safe_dump(values, default_flow_style=True, width=1000).strip()}[/]")
    return values


def flag_values(flags: dict) -> dict:
    """CLI flags (None = not given) in the schema's shape: the model flags fill extractor
    sections, the smiles flags the smiles section."""
    values = {k: v for k, v in flags.items() if v is not None}
    for flag, extractor in MODEL_FLAGS.items():
        if flag in values:
            values.setdefault("extractors", {}).setdefault(extractor, {})["model"] = values.pop(flag)
    for key in SmilesSettings.model_fields:
        if key in values:
            values.setdefault("smiles", {})[key] = values.pop(key)
    return values


def load_config(path: Path | None, flags: dict, spec: TrackSpec) -> RunConfig:
    """Lowest to highest: the schema's defaults, the dataset's challenge.yaml, the --config YAML,
    flags; the track's default features and head fill what is left."""
    from_file = {}
    if path is not None:
        if not Path(path).exists():
            raise ChallengeError(f"{path}: config file not found.")
        from_file = _read_settings(Path(path))
        _check(from_file, str(path))
    from_flags = flag_values(flags)
    _check(from_flags, "flags")
    data = from_flags.get("data", from_file.get("data"))
    values = _merge(_merge(dataset_defaults(data), from_file), from_flags)
    config = RunConfig.model_validate(values)
    config.head = config.head or spec.default_head
    if not config.features:  # a head that reads its own kind of features (cnn-gru: face crops) names them
        from challenge.heads import get_head

        config.features = list(get_head(config.head).features or spec.default_features)
    config.seeds = config.seeds or spec.default_seeds
    return config


def resolved_yaml(config: RunConfig, **sections) -> str:
    return yaml.safe_dump({**config.model_dump(), **sections} if sections else config.model_dump(), sort_keys=False)
