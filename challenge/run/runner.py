"""One track run: read, extract once (or load media, for an end-to-end head), tune or train,
score, predict, write and validate the submission, and record all of it in one MLflow run
(trials as nested runs), in the run context (challenge.run.context) with the run's protocol
(challenge.run.protocols, --protocol: hold-out or grouped folds); --seeds S repeats it as nested runs.

The run receives its track spec; nothing here knows a track by name."""

from __future__ import annotations

from pathlib import Path

from challenge.config import RunConfig, RunResult
from challenge.errors import ChallengeError
from challenge.progress import say
from challenge.run.prepare import extract_all, prepare_features, prepare_media, split_builder
from challenge.track import Problem, TrackSpec


def run(spec: TrackSpec, config: RunConfig) -> RunResult:
    """A track's own pipeline (study tracks) or the shared leaderboard pipeline, over --seeds."""
    from challenge.heads import get_head
    from challenge.preflight import check_run_settings
    from challenge.run.protocols import over_seeds
    from challenge.run.selection import check_head_options

    check_run_settings(config)  # before any extraction: a mistyped store URL, a missing GPU, an --out that is a file
    head_cls = get_head(config.head)
    head_cls.require(spec.problem)  # a wrong --head fails at once too
    check_head_options(config, head_cls, spec.problem)  # and --epochs for a head without epochs
    if spec.run is not None:
        return spec.run(spec, config)
    return over_seeds(spec, config, lambda seeded: run_track(spec, seeded))


def run_track(spec: TrackSpec, config: RunConfig) -> RunResult:
    import mlflow

    from challenge.heads import get_head
    from challenge.postprocess import PostProcess
    from challenge.run.context import RunContext
    from challenge.run.finish import finish
    from challenge.run.protocols import checkpoint_root, get_protocol
    from challenge.run.selection import fit_head, select_out_of_fold
    from challenge.stores.tuning import tuning_key

    head_cls = get_head(config.head)
    context = RunContext(spec, config)
    protocol = get_protocol(config.protocol)(spec, config, head_cls, context.device)
    if config.zero_shot and spec.zero_shot is None:
        raise ChallengeError(f"--zero-shot: the {spec.name} track has no zero-shot rule (ce has one: compounds from an EXPR model).")
    # zero-shot (CE): the head learns the source track's labels on the same root
    train_spec = spec.zero_shot.source if config.zero_shot else spec
    end_to_end = head_cls.reads == "media"
    if end_to_end and config.zero_shot:
        raise ChallengeError(f"--zero-shot with the end-to-end head {head_cls.name}: not supported; zero-shot runs read cached features.")
    protocol.check(end_to_end)
    if end_to_end:
        from challenge.training.trainer import init_distributed

        distributed = init_distributed(context.device)
        samples, splits, keys, features = prepare_media(train_spec, config, head_cls)
        if distributed.rank > 0:  # torchrun: the other ranks train with rank 0 and record nothing
            return _train_as_worker(train_spec, config, head_cls, splits, context.device, distributed)
    else:
        samples, splits, keys, _ = prepare_features(train_spec, config)
        features = splits
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    fingerprint = samples.fingerprint()
    key = tuning_key(keys, head_cls, protocol.name if protocol.in_study_name else "")
    with context.start(fingerprint, keys, tuning_key=key) as run:
        if samples.skipped:
            mlflow.log_text("\n".join(samples.skipped), "skipped.txt")
        mlflow.set_tag("protocol", protocol.name)
        fit = protocol.fitter(train, valid, checkpoints=checkpoint_root(config) if end_to_end else None)
        fitted = fit_head(train_spec, config, head_cls, fit, fingerprint, key, protocol.steps)
        head, params, trials_run, provenance = fitted.head, fitted.params, fitted.ran, fitted.provenance
        if config.zero_shot:
            mlflow.log_metric("source_score", max((r["valid_score"] for r in head.history), default=float("nan")))
            head, valid, test = _zero_shot(spec, head, config, train.normaliser)
        conversion = getattr(getattr(getattr(head, "model", None), "backbone", None), "conversion", None)
        if conversion:  # a single weights file: what was recognised and dropped, kept with the run
            mlflow.log_text(conversion + "\n", "backbone_conversion.txt")
        if hasattr(head, "save_backbone"):  # a transformers backbone (cnn-gru's CNN stays inside its saved model)
            folder = head.save_backbone(run.out / "backbone")
            say(f"fine-tuned backbone: {folder.resolve()} (logged with the run; pass it as {head.model_flag} to extract features from it)")
        estimate = None
        if (
            fitted.from_study  # a resumed, finished study too: rerunning it with --select out-of-fold is how a team uses it
            and protocol.unselected_estimate
            and config.estimate_folds > 1
            and not spec.problem.per_frame
            and head_cls.search_space
            and not end_to_end
        ):
            estimate = _estimate(spec, config, head_cls, params, train, valid, context.device)
        chosen, choice = head, None
        if config.select == "out-of-fold":
            if estimate is None:
                raise ChallengeError(
                    "--select out-of-fold needs the estimate that selected nothing: a tuned (--tune) clip track run with "
                    "--estimate-folds 2 or more, and a head that reads cached features."
                )
            chosen, choice = select_out_of_fold(spec, estimate, head, train, valid, config.seed)
            say(choice)
            mlflow.set_tags({"selected": estimate.winner(), "select": "out-of-fold"})
        post = PostProcess.for_track(spec, config.tune_threshold)
        held = protocol.validation_outputs(chosen, valid)
        result = finish(spec, config, chosen, post, valid, test, run.run_id, params, provenance, held)
        result.trials_run, result.tuned, result.estimate, result.selection = trials_run, fitted.from_study, estimate, choice
        result.protocol = protocol.name
        if config.tune_threshold and spec.problem == Problem.CLIP_CLASSIFICATION and not end_to_end:
            result.threshold = _threshold_estimate(spec, config, head_cls, params, train, valid, context.device)
        mlflow.log_params(_flat_params(params))
        run.save_model(chosen, post, train.normaliser, keys)
        if not config.zero_shot:  # beside an end-to-end head: the linear model on the frozen backbone's features
            result.baseline = protocol.baseline(result.score, features["train"], features["valid"])
    return result


def _flat_params(params: dict) -> dict:
    from challenge.stores import tracking

    return tracking.flatten("head.", params)


def _train_as_worker(spec, config, head_cls, splits, device, distributed) -> RunResult:
    """A rank > 0 of a torchrun job: the same training as rank 0 (DDP keeps the weights equal),
    with the run's parameters; rank 0 alone tracks, checkpoints and writes."""
    from challenge.run.protocols import checkpoint_root, hold_out
    from challenge.run.selection import head_overrides

    if config.tune:
        raise ChallengeError(
            "--tune under torchrun: a study spreads its trials over GPUs with --workers (one process each); "
            "torchrun is for one fine-tuning run with fixed parameters. Tune first, then run the best parameters under torchrun."
        )
    params = head_cls.default_parameters() | head_overrides(config, head_cls, spec.problem)
    # the same checkpoint key as rank 0's; rank 0 alone reads and writes the file, and sends a resumed state to every rank
    value, _ = hold_out(spec, config, head_cls, splits["train"], splits["valid"], device, checkpoints=checkpoint_root(config))(params)
    return RunResult("", value, {}, params, None)


def _estimate(spec, config, head_cls, params, train, valid, device):
    import mlflow

    from challenge.run.estimate import cross_fitted_estimate

    say(
        f"refitting the chosen parameters and the baseline on {config.estimate_folds} folds of train+valid "
        "(an estimate that selected nothing; --estimate-folds 0 skips it)"
    )
    estimate = cross_fitted_estimate(spec, head_cls, params, train, valid, config.seed, config.estimate_folds, device)
    mlflow.log_metrics(
        {"estimate.score": estimate.score, "estimate.baseline_score": estimate.baseline_score, "estimate.gain_over_baseline": estimate.gain}
    )
    return estimate


def _threshold_estimate(spec, config, head_cls, params, train, valid, device):
    import mlflow

    from challenge.run.estimate import threshold_estimate

    folds = max(config.estimate_folds, 2)
    say(
        f"checking the tuned threshold out of fold ({folds} folds of train+valid; a threshold tuned on the validation {spec.items} overfits)"
    )
    estimate = threshold_estimate(spec, head_cls, params, train, valid, config.seed, folds, device)
    mlflow.log_metrics({"threshold_oof.tuned": estimate.tuned, "threshold_oof.fixed": estimate.fixed})
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
