"""Optuna studies: one per track, features, head and data; seeded TPE, median pruning on the
validation curve, warm-started from the head's defaults, resumable after a kill."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
import warnings

import optuna

from challenge.schema_lock import schema_lock, sqlite_path

DEFAULT_STORAGE = "sqlite:///optuna/studies.db"
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def tuning_key(feature_keys: dict[str, str], head_cls) -> str:
    """What a study tunes on, beyond the data: the features' cache keys (so another model,
    layer or preprocessing is another study, never a resumed one), the head and its search
    space. Also tagged on each run, so the "best tuned parameters" look-up matches it exactly."""
    space = {name: repr(distribution) for name, distribution in sorted(head_cls.search_space.items())}
    payload = json.dumps({"features": feature_keys, "head": head_cls.name, "space": space}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def storage_for(url: str | None):
    url = url or DEFAULT_STORAGE
    if (database := sqlite_path(url)) is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    # the heartbeat marks trials of a killed process as failed; the callback re-queues their
    # parameters, so a resumed study finishes what the killed one started
    with warnings.catch_warnings():  # the heartbeat API is marked experimental
        warnings.simplefilter("ignore")
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=5, grace_period=15,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )


def open_study(name: str, storage_url: str | None, seed: int, defaults: dict, direction: str = "maximize",
               worker: int = 0) -> optuna.Study:
    """`worker`: this process's index among the workers sharing the study (--worker, or the
    k of --workers K). Each worker's sampler gets its own seed, so workers started together
    never propose the same parameters, and a worker's proposals stay reproducible."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage_url or DEFAULT_STORAGE
    with schema_lock(url):  # table creation and the defaults' enqueueing: one process at a time
        study = optuna.create_study(
            study_name=name, storage=storage_for(url), direction=direction, load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=3),
        )
        if not study.trials:
            study.enqueue_trial(defaults, skip_if_exists=True)  # known-good parameters first
        stored = len(study.trials)
    # a resumed study must not replay the proposals of the first session: the sampler's seed
    # moves on with the number of trials already stored (still reproducible from the same state)
    study.sampler = optuna.samplers.TPESampler(seed=seed + WORKER_SEED_STRIDE * worker + stored)
    return study


WORKER_SEED_STRIDE = 100_003  # a prime far above any study's trial count: worker seeds never meet


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def optimise(study: optuna.Study, objective: Callable, n_trials: int | None, timeout: float | None) -> int:
    """Run until the study holds `n_trials` finished trials (or `timeout` seconds pass);
    returns how many trials this call ran."""
    before = finished_trials(study)
    remaining = None if n_trials is None else max(n_trials - before, 0)
    if remaining == 0:
        return 0
    # other workers fill the same study: stop once finished plus running trials reach n_trials
    # (the running ones are somebody's and will finish), so the study ends with n_trials
    callbacks = [] if n_trials is None else [optuna.study.MaxTrialsCallback(n_trials, states=(*FINISHED, optuna.trial.TrialState.RUNNING))]
    study.optimize(objective, n_trials=remaining, timeout=timeout, catch=(), callbacks=callbacks)
    return finished_trials(study) - before
