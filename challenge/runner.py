"""One track run: read, extract once, tune or train, score, predict, write and validate the
submission, and record all of it in one MLflow run (trials as nested runs).

The run receives its track spec; nothing here knows a track by name."""

from __future__ import annotations

import time
from pathlib import Path


from challenge.config import RunConfig, RunResult, resolved_yaml
from challenge.errors import ChallengeError
from challenge.prepare import extract_all, prepare_features, split_builder
from challenge.progress import say
from challenge.track import TrackSpec


def run(spec: TrackSpec, config: RunConfig) -> RunResult:
    """A track's own pipeline (study tracks) or the shared leaderboard pipeline."""
    from challenge.heads import get_head
    from challenge.preflight import check_run_settings

    check_run_settings(config)  # before any extraction: a mistyped store URL, a missing GPU, an --out that is a file
    get_head(config.head).require(spec.problem)  # a wrong --head fails at once too
    if (config.seeds or 1) > 1 and spec.default_seeds == 1:
        raise ChallengeError(f"--seeds {config.seeds}: repeated seeds with mean ± sd are implemented for smile-laugh only so far; "
                             f"run the {spec.name} track once per --seed (or `challenge ensemble`) instead.")
    return spec.run(spec, config) if spec.run is not None else run_track(spec, config)



def run_track(spec: TrackSpec, config: RunConfig) -> RunResult:
    import mlflow

    from challenge import tracking
    from challenge.baseline import linear_baseline
    from challenge.features.base import resolve_device
    from challenge.finish import finish
    from challenge.heads import get_head
    from challenge.postprocess import PostProcess
    from challenge.saved_model import save_model
    from challenge.seeding import seed_everything
    from challenge.tuning import tuning_key

    head_cls = get_head(config.head)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    if config.zero_shot and spec.zero_shot is None:
        raise ChallengeError(f"--zero-shot: the {spec.name} track has no zero-shot rule (ce has one: compounds from an EXPR model).")
    # zero-shot (CE): the head learns the source track's labels on the same root
    train_spec = spec.zero_shot.source if config.zero_shot else spec
    samples, splits, keys, extractors = prepare_features(train_spec, config)
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    fingerprint = samples.fingerprint()
    experiment = tracking.setup(config.tracking_uri, spec.name)
    run_name = f"{config.head}-{'+'.join(config.features)}{'-shuffled' if config.shuffle_labels else ''}"
    key = tuning_key(keys, head_cls)
    with mlflow.start_run(experiment_id=experiment, run_name=run_name) as active:
        mlflow.set_tags(tracking.run_tags("track", spec.name, config, config.head, fingerprint, keys, tuning_key=key))
        mlflow.log_params({"features": ",".join(config.features), "head": config.head, "seed": config.seed, "tune": config.tune})
        mlflow.log_text(resolved_yaml(config), "resolved_config.yaml")
        if samples.skipped:
            mlflow.log_text("\n".join(samples.skipped), "skipped.txt")
        fitted = fit_head(train_spec, config, head_cls, train_once(train_spec, config, head_cls, train, valid, device), fingerprint, key)
        head, params, trials_run, provenance = fitted.head, fitted.params, fitted.ran, fitted.provenance
        if config.zero_shot:
            mlflow.log_metric("source_score", max((r["valid_score"] for r in head.history), default=float("nan")))
            head, valid, test = _zero_shot(spec, head, config, train.normaliser)
        post = PostProcess.for_track(spec)
        result = finish(spec, config, head, post, valid, test, active.info.run_id, params, provenance)
        result.trials_run = trials_run
        mlflow.log_params(tracking.flatten("head.", params))
        save_model(head, post, train.normaliser, spec, config, keys)
        if not config.zero_shot:
            result.baseline = linear_baseline(spec, config.head, result.score, train, valid, config.seed)
        if config.tune and trials_run and config.estimate_folds > 1 and not spec.problem.per_frame and head_cls.search_space:
            result.estimate = _estimate(spec, config, head_cls, params, train, valid, device)
    return result


def _estimate(spec, config, head_cls, params, train, valid, device):
    import mlflow

    from challenge.estimate import cross_fitted_estimate

    say(f"refitting the chosen parameters and the baseline on {config.estimate_folds} folds of train+valid "
        "(an estimate that selected nothing; --estimate-folds 0 skips it)")
    estimate = cross_fitted_estimate(spec, head_cls, params, train, valid, config.seed, config.estimate_folds, device)
    mlflow.log_metrics({"estimate.score": estimate.score, "estimate.baseline_score": estimate.baseline_score,
                        "estimate.gain_over_baseline": estimate.gain})
    return estimate


def _zero_shot(spec: TrackSpec, source_head, config: RunConfig, normaliser):
    """This track's videos of the same root (labelled validation when there is one, the test
    videos), normalised like the source track's training data."""
    samples = spec.zero_shot.read(Path(config.data))
    store, extractors, digests, _ = extract_all(samples, config)
    build = split_builder(spec, config, samples)
    parts = {}
    for split in ("valid", "test"):
        part = samples.split(split)
        parts[split] = build(part, extractors, store, digests).normalise_with(normaliser) if part else None
    if parts["test"] is None:
        raise ChallengeError(f"{config.data}: no {spec.name} test videos (names_of_videos_in_each_test_set): nothing to predict.")
    return spec.zero_shot.wrap(source_head), parts["valid"], parts["test"]


def train_once(spec: TrackSpec, config: RunConfig, head_cls, train, valid, device: str):
    """The usual way to fit a head: train on `train`, early stopping and selection on `valid`.
    Returns fit(params, report) -> (validation score, fitted head), what fit_head tunes."""
    score_value = lambda truth, outputs: spec.score(truth, outputs).value  # noqa: E731

    def fit(params: dict, report=None):
        head = head_cls(params, spec.problem, len(spec.labels), seed=config.seed, device=device)
        return head.fit(train, valid, score_value, report), head

    return fit


def fit_head(spec: TrackSpec, config: RunConfig, head_cls, fit, fingerprint: str, key: str) -> Tuned:
    """The run's head: tuned (--tune; the best trial's model is kept, not retrained) or fitted
    with the head's defaults. `fit(params, report)` says how one candidate is fitted and scored
    (train_once, or grouped cross-validation in the smiles tracks). Logs its history."""
    import mlflow

    from challenge import tracking

    overrides = head_overrides(config, head_cls, spec.problem)
    fitted = Tuned(head_cls.default_parameters() | overrides, 0, {"source": "defaults"}, None)
    if config.tune and not head_cls.search_space:
        say(f"[yellow]the {config.head} head has nothing to tune (it chooses its penalty inside the fit): fitting it once[/]")
    elif config.tune:
        fitted = tune_head(spec, config, head_cls, fit, fingerprint, overrides, key)
    if fitted.head is not None:
        say(f"the {config.head} head of trial {fitted.provenance['trial']} is the final model (same data, parameters and seed: no refit)")
        mlflow.set_tag("final_model", f"trial {fitted.provenance['trial']}, not refitted")
    else:
        mlflow.set_tag("final_model", "fitted after tuning" if config.tune else "fitted with the head's defaults")
        say(f"training the {config.head} head with {'tuned' if config.tune else 'default'} parameters")
        fitted.value, fitted.head = fit(fitted.params)
    tracking.log_history(fitted.head.history)
    return fitted


def head_overrides(config: RunConfig, head_cls, problem=None) -> dict:
    """Head parameters the run fixes (--epochs, --window, and `head_params` of the run config,
    e.g. the loss), for heads that have them; tuning never changes them."""
    given = {"epochs": config.epochs, "window": config.window}
    fixed = {k: v for k, v in given.items() if v is not None and k in head_cls.defaults}
    for name, value in config.head_params.items():
        if name in LOSS_PARAMETERS and hasattr(head_cls, "build"):
            _check_loss(head_cls, problem, name, value)
        elif name not in head_cls.defaults:
            raise ChallengeError(f"head_params: the {head_cls.name} head has no parameter {name!r}; it has "
                                 f"{', '.join(sorted(head_cls.defaults))}" + (", loss, focal_gamma" if hasattr(head_cls, "build") else ""))
        fixed[name] = value
    return fixed


LOSS_PARAMETERS = ("loss", "focal_gamma")


def _check_loss(head_cls, problem, name: str, value) -> None:
    from challenge.track import Problem
    from challenge.training.losses import CLASS_LOSSES, CLIP_LOSSES, LABEL_LOSSES, VALUE_LOSSES

    if name != "loss" or problem is None:
        return
    choices = {Problem.CLIP_REGRESSION: CLIP_LOSSES, Problem.FRAME_CLASSIFICATION: CLASS_LOSSES,
               Problem.FRAME_MULTILABEL: LABEL_LOSSES, Problem.FRAME_REGRESSION: VALUE_LOSSES}.get(problem, ())
    if value not in choices:
        raise ChallengeError(f"head_params: loss {value!r} is not one of the {problem.value} losses: {', '.join(choices) or 'none'}")


class Tuned:
    """What tuning gives: the best parameters, and the best trial's fitted head when this
    process trained it (a resumed study's best may come from an earlier session: then None)."""

    def __init__(self, params, ran, provenance, head, value: float | None = None):
        self.params, self.ran, self.provenance, self.head, self.value = params, ran, provenance, head, value


def tune_head(spec, config, head_cls, fit, fingerprint, overrides, key: str) -> Tuned:
    import mlflow
    import optuna

    from challenge import tracking
    from challenge.heads import suggest
    from challenge.tuning import finished_trials, open_study, optimise

    name = f"{spec.name}-{config.head}-{'+'.join(config.features)}-{fingerprint}-{key}{'-shuffled' if config.shuffle_labels else ''}"
    defaults = {k: v for k, v in head_cls.default_parameters().items() if k in head_cls.search_space}
    study, worker = open_study(name, config.storage, config.seed, defaults, spec.direction, config.worker)
    done = finished_trials(study)
    say(f"study {name}: {done} finished trial(s) stored, running until {config.trials}")
    fitted = {}  # trial number -> head, the best one only

    def objective(trial: optuna.Trial) -> float:
        params = head_cls.default_parameters() | suggest(trial, head_cls.search_space) | overrides
        trial.set_user_attr("worker", worker)  # which process ran it, when several share the study
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.set_tags({"challenge.kind": "trial", "study": name, "trial": trial.number, **tracking.process_tags()})
            mlflow.log_params(params)

            began = time.perf_counter()

            def report(step: int, value: float) -> None:
                trial.report(value, step)
                mlflow.log_metric("valid_score", value, step=step)
                if trial.should_prune():
                    mlflow.set_tag("state", "pruned")
                    say(f"trial {trial.number}: pruned at step {step} (score {value:.4f}, below the median of earlier trials there; "
                        f"{time.perf_counter() - began:.1f} s)")
                    raise optuna.TrialPruned()

            value, head = fit(params, report)
            mlflow.log_metric("score", value)
            say(f"trial {trial.number}: score {value:.4f} ({time.perf_counter() - began:.1f} s)")
            if not fitted or value > max(fitted.values(), key=lambda pair: pair[0])[0]:
                fitted.clear()
                fitted[trial.number] = (value, head)
            return value

    ran = optimise(study, objective, config.trials, config.timeout)
    best = study.best_trial
    mlflow.log_metrics({"tuning.best_trial_score": best.value, "tuning.trials": finished_trials(study)})
    provenance = {
        "source": "optuna", "study": name, "tuning_key": key, "storage": config.storage or "sqlite:///optuna/studies.db",
        "trial": best.number, "value": best.value, "data_fingerprint": fingerprint,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    head = fitted[best.number][1] if best.number in fitted else None
    return Tuned(head_cls.default_parameters() | best.params | overrides, ran, provenance, head, best.value)
