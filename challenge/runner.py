"""One track run: read, extract once, tune or train, score, predict, write and validate the
submission, and record all of it in one MLflow run (trials as nested runs)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import yaml

from challenge.config import RunConfig, RunResult
from challenge.errors import ChallengeError
from challenge.finish import finish_clips, finish_frames
from challenge.progress import say
from tracks import get_track
from tracks.base import Problem, TrackSpec


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


def extract_all(samples, config: RunConfig, extractors=None):
    """Every configured extractor (or those given) over every sample, once; returns
    (store, extractors, digests, keys)."""
    from challenge.features import FeatureStore
    from challenge.features.extract import extract

    store = FeatureStore(config.store)
    extractors = make_extractors(config) if extractors is None else extractors
    digests = {}
    for extractor in extractors:
        digests[extractor.label] = extract(extractor, samples, store, device=config.device).digests
    return store, extractors, digests, feature_keys(extractors)


def feature_keys(extractors) -> dict[str, str]:
    """Extractor label -> its cache key (model content included), as runs are tagged with it."""
    return {extractor.label: extractor.cache_key()[:16] for extractor in extractors}


def read_samples(spec: TrackSpec, config: RunConfig):
    samples = spec.read(Path(config.data), on_missing="skip" if config.skip_missing else "error")
    if samples.skipped:
        say(f"[yellow]skipped {len(samples.skipped)} sample(s) without media (listed in the run's skipped.txt)[/]")
    return samples


def prepare_features(spec: TrackSpec, config: RunConfig, samples=None):
    """Samples and normalised per-split training data; extraction happens here, once."""
    samples = samples if samples is not None else read_samples(spec, config)
    store, extractors, digests, keys = extract_all(samples, config)
    builder = _clip_split if spec.problem == Problem.CLIP_REGRESSION else _frame_split(spec, config, samples)
    splits = {}
    for split in ("train", "valid", "test"):
        part = samples.split(split)
        if not part and split != "test":
            raise ChallengeError(f"{config.data}: the {split} split is empty.")
        splits[split] = builder(part, extractors, store, digests) if part else None
    mean, std = splits["train"].fit_normalisation()
    for data in splits.values():
        if data is not None:
            data.normalise_with(mean, std)
    if config.shuffle_labels:
        _shuffle_labels(splits["train"], config.seed)
    return samples, splits, keys


def _clip_split(part, extractors, store, digests):
    from challenge.training.features import clip_features

    return clip_features(part, extractors, store, digests)


def _frame_split(spec: TrackSpec, config: RunConfig, samples):
    from challenge.data.affwild import find_sample_file, sample_file_frames
    from challenge.media import video_frame_rate
    from challenge.training.frame_data import frame_features

    test_frames = sample_file_frames(find_sample_file(Path(config.data), spec.name)) if samples.split("test") else {}
    rates = {s.video: video_frame_rate(s.video) for s in samples if s.video is not None}

    def build(part, extractors, store, digests):
        lengths = {s.id: len(s.labels) if s.labels is not None else test_frames.get(s.id, 0) for s in part}
        missing = [s.id for s in part if lengths[s.id] == 0]
        if missing:
            raise ChallengeError(f"test video(s) {missing[:10]} are not in the organisers' sample file; check names_of_videos_in_each_test_set.")
        fps = {s.id: rates.get(s.video, 30.0) for s in part}
        data = frame_features(part, extractors, store, digests, lengths, fps)
        filled = data.filled_frames()
        if filled:
            say(f"{part[0].split}: {filled} of {sum(data.lengths)} frames have no face crop; they take the nearest frame's features")
        return data

    return build


def _shuffle_labels(train, seed: int) -> None:
    """Control run: every clip (clip tracks) or video (frame tracks) gets another one's labels.
    A derangement, not a plain permutation: with a few videos a permutation often leaves some
    videos their own labels, and the control then learns."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    source = np.empty_like(order)
    source[order] = np.roll(order, 1)  # each item takes the labels of its predecessor in a random cycle
    if isinstance(getattr(train, "targets", None), np.ndarray):
        train.targets = train.targets[source]
        return
    # frame tracks: each video gets another video's label sequence, cut or repeated to its length
    train.labels = [np.resize(train.labels[j], train.labels[i].shape) for i, j in enumerate(source)]


def run_track(spec: TrackSpec, config: RunConfig) -> RunResult:
    import mlflow

    from challenge import tracking
    from challenge.features.base import resolve_device
    from challenge.heads import get_head
    from challenge.seeding import seed_everything
    from challenge.tuning import tuning_key

    head_cls = get_head(config.head)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    # CE zero-shot: the head learns EXPR on the same root; compound scores come from its output
    train_spec = get_track("expr") if config.zero_shot else spec
    if config.zero_shot and spec.name != "ce":
        raise ChallengeError("--zero-shot is for the ce track: it turns an EXPR model's probabilities into compound scores.")
    samples, splits, keys = prepare_features(train_spec, config)
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    fingerprint = samples.fingerprint()
    experiment = tracking.setup(config.tracking_uri, spec.name)
    score_value = lambda truth, outputs: train_spec.score(truth, outputs).value  # noqa: E731
    overrides = {"epochs": config.epochs} if config.epochs and "epochs" in head_cls.defaults else {}
    run_name = f"{config.head}-{'+'.join(config.features)}{'-shuffled' if config.shuffle_labels else ''}"
    with mlflow.start_run(experiment_id=experiment, run_name=run_name) as run:
        mlflow.set_tags(tracking.run_tags("track", spec.name, config, config.head, fingerprint, keys,
                                          tuning_key=tuning_key(keys, head_cls)))
        mlflow.log_params({"features": ",".join(config.features), "head": config.head, "seed": config.seed, "tune": config.tune})
        mlflow.log_text(yaml.safe_dump(asdict(config), sort_keys=False), "resolved_config.yaml")
        if samples.skipped:
            mlflow.log_text("\n".join(samples.skipped), "skipped.txt")
        params, trials_run, provenance = head_cls.default_parameters() | overrides, 0, {"source": "defaults"}
        if config.tune:
            params, trials_run, provenance = tune_head(train_spec, config, head_cls, train, valid, fingerprint, overrides, device, score_value)
        say(f"training the {config.head} head with {'tuned' if config.tune else 'default'} parameters")
        head = head_cls(params, train_spec.problem, len(train_spec.labels), seed=config.seed, device=device)
        head.fit(train, valid, score_value)
        tracking.log_history(head.history)
        if config.zero_shot:
            mlflow.log_metric("expr_score", head.history and max(r["valid_score"] for r in head.history))
            head, valid, test = _zero_shot_compound(head, config, train)
        finish = finish_clips if spec.problem == Problem.CLIP_REGRESSION else finish_frames
        result = finish(spec, config, head, valid, test, run.info.run_id, params, provenance)
        result.trials_run = trials_run
        mlflow.log_params(tracking.flatten("head.", params))
    return result


class _CompoundFromExpr:
    """An EXPR head whose per-frame probabilities become compound scores (tracks.ce rule)."""

    def __init__(self, expr_head):
        self.expr_head = expr_head

    def predict(self, data):
        from tracks.ce import zero_shot_from_expr

        return [zero_shot_from_expr(outputs) for outputs in self.expr_head.predict(data)]


def _zero_shot_compound(expr_head, config: RunConfig, expr_train):
    """CE data of the same root (labelled validation when the user has one, test videos),
    normalised like the EXPR training data."""
    from challenge.data.affwild import read_affwild

    ce = get_track("ce")
    samples = read_affwild(Path(config.data), "ce", on_missing="skip", require_labels=False)
    store, extractors, digests, _ = extract_all(samples, config)
    build = _frame_split(ce, config, samples)
    parts = {}
    for split in ("valid", "test"):
        part = samples.split(split)
        parts[split] = build(part, extractors, store, digests).normalise_with(expr_train.mean, expr_train.std) if part else None
    if parts["test"] is None:
        raise ChallengeError(f"{config.data}: no CE test videos (names_of_videos_in_each_test_set/*CE*): nothing to predict.")
    return _CompoundFromExpr(expr_head), parts["valid"], parts["test"]


def tune_head(spec, config, head_cls, train, valid, fingerprint, overrides, device, score_value):
    import mlflow
    import optuna

    from challenge import tracking
    from challenge.heads import suggest
    from challenge.tuning import finished_trials, open_study, optimise, tuning_key

    key = tuning_key(feature_keys(make_extractors(config)), head_cls)
    name = f"{spec.name}-{config.head}-{'+'.join(config.features)}-{fingerprint}-{key}{'-shuffled' if config.shuffle_labels else ''}"
    defaults = {k: v for k, v in head_cls.default_parameters().items() if k in head_cls.search_space}
    study = open_study(name, config.storage, config.seed, defaults, spec.direction)
    done = finished_trials(study)
    say(f"study {name}: {done} finished trial(s) stored, running until {config.trials}")

    def objective(trial: optuna.Trial) -> float:
        params = head_cls.default_parameters() | suggest(trial, head_cls.search_space) | overrides
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.set_tags({"challenge.kind": "trial", "study": name, "trial": trial.number, **tracking.process_tags()})
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
        "source": "optuna", "study": name, "tuning_key": key, "storage": config.storage or "sqlite:///optuna/studies.db",
        "trial": best.number, "value": best.value, "data_fingerprint": fingerprint,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return head_cls.default_parameters() | best.params | overrides, ran, provenance
