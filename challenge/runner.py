"""One track run: read, extract once, tune or train, score, predict, write and validate the
submission, and record all of it in one MLflow run (trials as nested runs)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from challenge.errors import ChallengeError
from challenge.progress import say
from tracks.base import TrackSpec

FEATURE_CHOICES = ("wav2vec2", "mae", "egemaps", "provided-wav2vec2", "provided-vit")


@dataclass
class RunConfig:
    """Everything a run depends on; saved with the run as resolved_config.yaml."""

    track: str
    data: str
    features: list[str] = field(default_factory=lambda: ["wav2vec2"])
    audio_model: str = "facebook/wav2vec2-base"
    visual_model: str = "facebook/vit-mae-base"
    head: str = "lstm"
    seed: int = 0
    tune: bool = False
    trials: int = 20
    timeout: float | None = None
    storage: str | None = None
    tracking_uri: str | None = None
    out: str | None = None
    device: str = "auto"
    epochs: int | None = None  # overrides the head's epoch budget (torch heads)
    shuffle_labels: bool = False  # control run: training labels permuted across clips
    skip_missing: bool = False
    store: str | None = None


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
    bad = [f for f in config.features if f not in FEATURE_CHOICES]
    if bad:
        raise ChallengeError(f"unknown feature set(s) {bad}; choose from {', '.join(FEATURE_CHOICES)}")
    return config


def make_extractors(config: RunConfig):
    from challenge.features import make_extractor

    built = []
    for name in config.features:
        if name == "wav2vec2":
            built.append(make_extractor("wav2vec2", model=config.audio_model))
        elif name == "mae":
            built.append(make_extractor("mae", model=config.visual_model))
        elif name.startswith("provided-"):
            built.append(make_extractor("provided", kind=name.removeprefix("provided-")))
        else:
            built.append(make_extractor(name))
    return built


def prepare_features(spec: TrackSpec, config: RunConfig):
    """Samples and normalised ClipFeatures per split; extraction happens here, once."""
    from challenge.features import FeatureStore
    from challenge.features.extract import extract
    from challenge.training.features import clip_features

    samples = spec.read(Path(config.data), on_missing="skip" if config.skip_missing else "error")
    if samples.skipped:
        say(f"[yellow]skipped {len(samples.skipped)} clip(s) without media (listed in the run's skipped.txt)[/]")
    store = FeatureStore(config.store)
    extractors = make_extractors(config)
    digests, keys = {}, {}
    for extractor in extractors:
        report = extract(extractor, samples, store, device=config.device)
        digests[extractor.name] = report.digests
        keys[f"{extractor.name}"] = extractor.cache_key()[:16]
    splits = {}
    for split in ("train", "valid", "test"):
        part = samples.split(split)
        if not part and split != "test":
            raise ChallengeError(f"{config.data}: the {split} split is empty.")
        splits[split] = clip_features(part, extractors, store, digests) if part else None
    mean, std = splits["train"].fit_normalisation(seed=config.seed)
    for data in splits.values():
        if data is not None:
            data.normalise_with(mean, std)
    if config.shuffle_labels:
        splits["train"].targets = splits["train"].targets[np.random.default_rng(config.seed).permutation(len(splits["train"]))]
    return samples, splits, keys


def run_clip_track(spec: TrackSpec, config: RunConfig) -> RunResult:
    import mlflow

    from challenge import tracking
    from challenge.features.base import resolve_device
    from challenge.heads import get_head
    from challenge.seeding import seed_everything

    head_cls = get_head(config.head)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    samples, splits, feature_keys = prepare_features(spec, config)
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    fingerprint = samples.fingerprint()
    experiment = tracking.setup(config.tracking_uri, spec.name)
    score_value = lambda truth, prediction: spec.score(truth, prediction).value  # noqa: E731
    overrides = {"epochs": config.epochs} if config.epochs and "epochs" in head_cls.defaults else {}
    run_name = f"{config.head}-{'+'.join(config.features)}{'-shuffled' if config.shuffle_labels else ''}"
    with mlflow.start_run(experiment_id=experiment, run_name=run_name) as run:
        mlflow.set_tags({
            "challenge.kind": "track", "track": spec.name, "head": config.head, "features": ",".join(config.features),
            "git_commit": tracking.git_commit(), "data_fingerprint": fingerprint, "seed": config.seed,
            "shuffled_labels": config.shuffle_labels, **{f"feature_key.{k}": v for k, v in feature_keys.items()},
        })
        mlflow.log_params({"features": ",".join(config.features), "head": config.head, "seed": config.seed, "tune": config.tune})
        mlflow.log_text(yaml.safe_dump(asdict(config), sort_keys=False), "resolved_config.yaml")
        if samples.skipped:
            mlflow.log_text("\n".join(samples.skipped), "skipped.txt")
        params, trials_run, provenance = head_cls.default_parameters() | overrides, 0, {"source": "defaults"}
        if config.tune:
            params, trials_run, provenance = _tune(spec, config, head_cls, train, valid, fingerprint, overrides, device, score_value)
        say(f"training the {config.head} head with {'tuned' if config.tune else 'default'} parameters")
        head = head_cls(params, spec.problem, len(spec.labels), seed=config.seed, device=device)
        head.fit(train, valid, score_value)
        tracking.log_history(head.history)
        result = _score_and_submit(spec, config, head, valid, test, run.info.run_id, params, provenance)
        result.trials_run = trials_run
        mlflow.log_params(tracking.flatten("head.", params))
    return result


def _tune(spec, config, head_cls, train, valid, fingerprint, overrides, device, score_value):
    import mlflow
    import optuna

    from challenge import tracking
    from challenge.heads import suggest
    from challenge.tuning import finished_trials, open_study, optimise

    name = f"{spec.name}-{config.head}-{'+'.join(config.features)}-{fingerprint}{'-shuffled' if config.shuffle_labels else ''}"
    defaults = {k: v for k, v in head_cls.default_parameters().items() if k in head_cls.search_space}
    study = open_study(name, config.storage, config.seed, defaults, spec.direction)
    done = finished_trials(study)
    say(f"study {name}: {done} finished trial(s) stored, running until {config.trials}")

    def objective(trial: optuna.Trial) -> float:
        params = head_cls.default_parameters() | suggest(trial, head_cls.search_space) | overrides
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.set_tags({"challenge.kind": "trial", "study": name, "trial": trial.number})
            mlflow.log_params(params)

            def report(step: int, value: float) -> None:
                trial.report(value, step)
                mlflow.log_metric("valid_score", value, step=step)
                if trial.should_prune():
                    mlflow.set_tag("state", "pruned")
                    raise optuna.TrialPruned()

            head = head_cls(params, spec.problem, len(spec.labels), seed=config.seed, device=device)
            value = head.fit(train, valid, score_value, report)
            mlflow.log_metric("score", value)
            say(f"trial {trial.number}: score {value:.4f}")
            return value

    ran = optimise(study, objective, config.trials, config.timeout)
    best = study.best_trial
    mlflow.log_metrics({"tuning.best_trial_score": best.value, "tuning.trials": finished_trials(study)})
    provenance = {
        "source": "optuna", "study": name, "storage": config.storage or "sqlite:///optuna/studies.db",
        "trial": best.number, "value": best.value, "data_fingerprint": fingerprint,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return head_cls.default_parameters() | best.params | overrides, ran, provenance


def _score_and_submit(spec, config, head, valid, test, run_id, params, provenance) -> RunResult:
    import mlflow
    import pandas as pd

    from challenge.plots import predicted_vs_true

    prediction = head.predict(valid)
    score = spec.score(valid.targets, prediction)
    mlflow.log_metrics({"score": score.value, **{f"r.{k.replace(' ', '_')}": v for k, v in score.details.items()}})
    out = Path(config.out) if config.out else Path("submissions") / spec.name / run_id
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({"Filename": valid.ids})
    for j, label in enumerate(spec.labels):
        table[f"{label} true"], table[f"{label} predicted"] = valid.targets[:, j], prediction[:, j]
    table.to_csv(out / "validation_predictions.csv", index=False)
    predicted_vs_true(valid.targets, prediction, spec.labels, score.details, out / "predicted_vs_true.png")
    (out / "best_params.json").write_text(json.dumps({"params": params, "provenance": provenance, "score": score.value}, indent=1))
    submission = None
    if test is not None and len(test):
        submission = spec.write_submission(out / "predictions.csv", test.ids, head.predict(test))
        say(f"submission validated: {submission}")
    else:
        say("[yellow]no test clips found (test_data/raw/*.mp4): no submission written[/]")
    mlflow.log_artifacts(str(out))
    return RunResult(run_id, score.value, score.details, params, submission)
