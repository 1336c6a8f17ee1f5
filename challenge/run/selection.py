"""Choosing a run's head parameters: tuned with Optuna (--tune; the best trial's model is kept),
or the head's defaults; either way with the parameters the run fixes (--epochs, --window,
head_params, the finetune section). How one candidate is fitted and scored is the protocol's
`fit(params, report)` (challenge.run.protocols)."""

from __future__ import annotations

import time

import numpy as np

from challenge.config import RunConfig
from challenge.errors import ChallengeError
from challenge.progress import say
from challenge.stores.saved_state import describe, rebuild, saved_kind
from challenge.track import TrackSpec


def fit_head(spec: TrackSpec, config: RunConfig, head_cls, fit, fingerprint: str, key: str, steps=None) -> Tuned:
    """The run's head: tuned (--tune; the best trial's model is kept, not retrained) or fitted
    with the head's defaults. `fit(params, report)` says how one candidate is fitted and scored
    (challenge.run.protocols: hold-out, or grouped folds); `steps(epochs)` how many scores it
    reports while it trains (the protocol's: epochs, or folds), the pruner's budget. Logs its history."""
    import mlflow

    from challenge.stores import tracking

    overrides = head_overrides(config, head_cls, spec.problem)
    fitted = Tuned(head_cls.default_parameters() | overrides, 0, {"source": "defaults"}, None)
    if config.tune and not head_cls.search_space:
        say(f"[yellow]the {config.head} head has nothing to tune (it chooses its penalty inside the fit): fitting it once[/]")
    elif config.tune:
        fitted = tune_head(spec, config, head_cls, fit, fingerprint, overrides, key, steps)
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
    """Head parameters the run fixes (--epochs, --window, `head_params` of the run config, e.g.
    the loss, and for end-to-end heads the `finetune` settings given), for heads that have them;
    tuning never changes them."""
    check_head_options(config, head_cls, problem)
    fixed = {k: v for k, v in {"epochs": config.epochs, "window": config.window}.items() if v is not None}
    if head_cls.reads == "media":  # the finetune section's settings the run gives (the others stay tunable) and the backbone
        fixed |= {k: getattr(config.finetune, k) for k in config.finetune.model_fields_set if k in head_cls.defaults}
        if "backbone" in head_cls.defaults:
            fixed["backbone"] = backbone_settings(config, head_cls.extractor)
    return fixed | dict(config.head_params)


def check_head_options(config: RunConfig, head_cls, problem=None) -> None:
    """--epochs, --window and `head_params` name parameters the head has (a loss the problem
    takes): given to a head without them they would be dropped, and the run not the one asked for.
    Called before any extraction (challenge.run.runner.run) and again when the head is built."""
    given = [k for k in ("epochs", "window") if getattr(config, k) is not None]
    lacking = [k for k in given if k not in head_cls.defaults]
    if lacking:
        from challenge.heads import load_all

        having = sorted(
            name
            for name, head in load_all().items()
            if all(k in head.defaults for k in lacking) and (problem is None or problem in head.problems)
        )
        raise ChallengeError(
            f"{' and '.join('--' + k for k in lacking)} given, but the {head_cls.name} head has no such parameter; "
            f"its parameters: {', '.join(sorted(head_cls.defaults)) or 'none'}. Leave the option out, "
            f"or choose a head that has it: {', '.join(having) or 'none for this track'}."
        )
    for name, value in config.head_params.items():
        if name in LOSS_PARAMETERS and hasattr(head_cls, "build"):
            _check_loss(head_cls, problem, name, value)
        elif name not in head_cls.defaults:
            raise ChallengeError(
                f"head_params: the {head_cls.name} head has no parameter {name!r}; it has "
                f"{', '.join(sorted(head_cls.defaults))}" + (", loss, focal_gamma" if hasattr(head_cls, "build") else "")
            )


LOSS_PARAMETERS = ("loss", "focal_gamma")


def backbone_settings(config: RunConfig, extractor: str) -> dict:
    """An end-to-end head's backbone: its extractor's settings (model, layer, heads...), the
    extractor's defaults filled in, so --audio-model / --visual-model name it as for features."""
    import dataclasses

    from challenge.features import make_extractor

    return dataclasses.asdict(make_extractor(extractor, **config.extractor_settings(extractor)))


def _check_loss(head_cls, problem, name: str, value) -> None:
    from challenge.track import Problem
    from challenge.training.losses import CLASS_LOSSES, CLIP_LOSSES, LABEL_LOSSES, VALUE_LOSSES

    if name != "loss" or problem is None:
        return
    choices = {
        Problem.CLIP_REGRESSION: CLIP_LOSSES,
        Problem.FRAME_CLASSIFICATION: CLASS_LOSSES,
        Problem.FRAME_MULTILABEL: LABEL_LOSSES,
        Problem.FRAME_REGRESSION: VALUE_LOSSES,
    }.get(problem, ())
    if value not in choices:
        raise ChallengeError(f"head_params: loss {value!r} is not one of the {problem.value} losses: {', '.join(choices) or 'none'}")


class Tuned:
    """What tuning gives: the best parameters, and the best trial's fitted head when this
    process trained it (a resumed study's best may come from an earlier session: then None)."""

    def __init__(self, params, ran, provenance, head, value: float | None = None):
        self.params, self.ran, self.provenance, self.head, self.value = params, ran, provenance, head, value

    @property
    def from_study(self) -> bool:
        """The parameters are a study's best trial: `ran` is 0 when the study was already finished."""
        return self.provenance.get("source") == "optuna"


PRUNED_BECAUSE = {  # what the --pruner choice measured when it cut a trial
    "median": "below the median of the finished trials there",
    "hyperband": "not in the top third of its Hyperband bracket at this rung",
}  # --pruner none never prunes


def tune_head(spec, config, head_cls, fit, fingerprint, overrides, key: str, steps=None) -> Tuned:
    import mlflow
    import optuna

    from challenge.heads import suggest
    from challenge.stores import tracking
    from challenge.stores.tuning import finished_trials, open_study, optimise

    name = f"{spec.name}-{config.head}-{'+'.join(config.features)}-{fingerprint}-{key}{'-shuffled' if config.shuffle_labels else ''}"
    defaults = {k: v for k, v in head_cls.default_parameters().items() if k in head_cls.search_space}
    epochs = (head_cls.default_parameters() | overrides).get("epochs")  # the pruner's warm-up is a share of them
    epochs = steps(epochs) if steps is not None else epochs  # what a candidate reports per step: epochs, or folds
    study, worker = open_study(name, config.storage, config.seed, defaults, spec.direction, config.worker, epochs, config.pruner)
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
                    say(
                        f"trial {trial.number}: pruned at step {step} (score {value:.4f}, {PRUNED_BECAUSE[config.pruner]}; "
                        f"{time.perf_counter() - began:.1f} s)"
                    )
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
        "source": "optuna",
        "study": name,
        "tuning_key": key,
        "storage": config.storage or "sqlite:///optuna/studies.db",
        "trial": best.number,
        "value": best.value,
        "data_fingerprint": fingerprint,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    head = fitted[best.number][1] if best.number in fitted else None
    return Tuned(head_cls.default_parameters() | best.params | overrides, ran, provenance, head, best.value)


@saved_kind("average")
class AveragedHeads:
    """Two fitted clip heads whose outputs are averaged (what `--select out-of-fold` submits
    when the average of the tuned head and the linear baseline wins out of fold)."""

    def __init__(self, members: list):
        self.members = members

    @property
    def name(self) -> str:
        return "+".join(member.name for member in self.members)

    @property
    def params(self) -> dict:
        return self.members[0].params

    def predict(self, data):
        return np.mean([np.asarray(member.predict(data), dtype=np.float32) for member in self.members], axis=0)

    def save_state(self, arrays: dict, prefix: str) -> dict:
        return {"members": [describe(m, arrays, f"{prefix}members.{i}.") for i, m in enumerate(self.members)]}

    @classmethod
    def load_state(cls, info: dict, arrays: dict, prefix: str) -> AveragedHeads:
        return cls([rebuild(m, arrays, f"{prefix}members.{i}.") for i, m in enumerate(info["members"])])


def select_out_of_fold(spec: TrackSpec, estimate, head, train, valid, seed: int):
    """The model `--select out-of-fold` submits: the tuned head, the linear baseline (fitted on
    train as the head was) or their average, whichever won the estimate that selected nothing.
    Returns (model, what was chosen and why)."""
    from challenge.run.baseline import fit_baseline

    winner = estimate.winner()
    figures = (
        f"out of fold: {estimate.head} {estimate.score:.4f}, {estimate.baseline_head} {estimate.baseline_score:.4f}, "
        f"average {estimate.average_score:.4f}"
    )
    said = f"--select out-of-fold: submitting the {estimate.winner_described()} ({figures})"
    if winner == "head":
        return head, said
    baseline, _, _ = fit_baseline(spec, train, valid, seed)
    return (baseline if winner == "baseline" else AveragedHeads([head, baseline])), said
