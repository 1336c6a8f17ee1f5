"""Optuna studies: one per track, features, head and data; seeded TPE, Hyperband (or median)
pruning on the validation curve, warm-started from the head's defaults, resumable after a kill."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import warnings
from collections.abc import Callable

import optuna

from challenge.stores.checks import check_store
from challenge.stores.schema_lock import DEFAULT_STORAGE, schema_lock

HEARTBEAT_SECONDS = 5  # a running trial's heartbeat; three missed and its worker counts as dead
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def tuning_key(feature_keys: dict[str, str], head_cls, protocol: str = "") -> str:
    """What a study tunes on, beyond the data: the features' cache keys (so another model,
    layer or preprocessing is another study, never a resumed one), the head and its search
    space, and how a candidate is scored when that is not the valid split (`protocol`, e.g.
    grouped folds). Also tagged on each run, so the "best tuned parameters" look-up matches it exactly."""
    space = {name: repr(distribution) for name, distribution in sorted(head_cls.search_space.items())}
    described = {"features": feature_keys, "head": head_cls.name, "space": space} | ({"protocol": protocol} if protocol else {})
    payload = json.dumps(described, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def storage_for(url: str | None):
    url = url or DEFAULT_STORAGE
    check_store(url, "--storage", DEFAULT_STORAGE)  # makes the default folder; a named path must exist
    # the heartbeat marks trials of a killed process as failed; the callback re-queues their
    # parameters, so a resumed study finishes what the killed one started
    with warnings.catch_warnings():  # the heartbeat API is marked experimental
        warnings.simplefilter("ignore")
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=3 * HEARTBEAT_SECONDS,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )


def open_study(
    name: str,
    storage_url: str | None,
    seed: int,
    defaults: dict,
    direction: str = "maximize",
    worker: int | None = None,
    epochs: int | None = None,
    pruning: str = "hyperband",
) -> tuple[optuna.Study, int]:
    """The study and this process's worker index. `worker`: its index among the workers sharing
    the study (--worker, or the k of --workers K); each worker's sampler gets its own seed, so
    workers never propose the same parameters, and a given index's proposals stay reproducible.
    Without one the process claims the next free index from the study's storage, under the
    storage's lock, so independent commands on one study (two terminals, an array job running
    the same line) never share a seed."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _quiet_interrupts()
    url = storage_url or DEFAULT_STORAGE
    check_store(url, "--storage", DEFAULT_STORAGE)
    with schema_lock(url):  # table creation and the defaults' enqueueing: one process at a time
        study = optuna.create_study(
            study_name=name,
            storage=storage_for(url),
            direction=direction,
            load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=pruner(epochs, pruning),
        )
        if not study.trials:
            study.enqueue_trial(defaults, skip_if_exists=True)  # known-good parameters first
        if worker is None:
            worker = study.user_attrs.get(CLAIMED, 0)
            study.set_user_attr(CLAIMED, worker + 1)
        stored = len(study.trials)
    # a resumed study must not replay the proposals of the first session: the sampler's seed
    # moves on with the number of trials already stored (still reproducible from the same state)
    study.sampler = optuna.samplers.TPESampler(seed=seed + WORKER_SEED_STRIDE * worker + stored)
    return study, worker


WORKER_SEED_STRIDE = 100_003  # a prime far above any study's trial count: worker seeds never meet
CLAIMED = "challenge.worker_indices_claimed"  # study attribute: how many processes claimed an index


class _NoInterruptTraceback(logging.Filter):
    """Ctrl-C inside a trial: Optuna logs the trial as failed with a 40-line traceback; the CLI
    says what an interruption keeps instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt))


def _quiet_interrupts() -> None:
    logger = logging.getLogger("optuna")
    if not any(isinstance(f, _NoInterruptTraceback) for f in logger.filters):
        logger.addFilter(_NoInterruptTraceback())
    for handler in logger.handlers:
        if not any(isinstance(f, _NoInterruptTraceback) for f in handler.filters):
            handler.addFilter(_NoInterruptTraceback())


STARTUP_TRIALS = 5  # finished trials before any pruning: a median of one (the defaults' own curve) cut every other trial
WARMUP_SHARE = 0.4  # no pruning in the first 40 % of a trial's epochs: a residual head leaves its linear start there


PRUNERS = ("median", "hyperband", "none")  # config.pruner's choices; the reasons are in pruner()'s docstring


class AfterFinished(optuna.pruners.BasePruner):
    """`inner` decides only once STARTUP_TRIALS trials have finished; until then every trial runs
    to its end. Hyperband alone finished 2 or 3 of 10 trials on ordered events (brackets hash the
    study name, so which studies it starves is chance): too few for TPE to learn from or for a
    team to read. Wrapped, Optuna's samplers no longer see a HyperbandPruner, so TPE learns from
    every finished trial rather than from its bracket's alone."""

    def __init__(self, inner: optuna.pruners.BasePruner, count: int = STARTUP_TRIALS):
        self.inner, self.count = inner, count

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        finished = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        return finished >= self.count and self.inner.prune(study, trial)


def pruner(epochs: int | None = None, kind: str = "hyperband") -> optuna.pruners.BasePruner:
    """How a study stops weak trials (`--pruner`).

    hyperband (the default): Optuna's successive halving over the epochs (from 1 to `epochs`,
    keeping a third at each rung, in several brackets), silent until STARTUP_TRIALS trials have
    finished (AfterFinished). Fewer trials finish than with median, but each
    rung gets a fair budget and a bracket that starts late lets slow learners run long. Measured
    against median on four EMI-layout sets (benchmarks/tuning_quality.py, 3 seeds): out of fold
    it was never below median, and on the one set where better parameters than the defaults
    exist (ordered events) it beat the defaults on every seed at 30 trials, where median did not.

    median: a trial is compared with the median of at least STARTUP_TRIALS
    finished trials, and only after the first WARMUP_SHARE of its `epochs` (steps: a head
    without epochs reports its own checkpoints). Before, with one start-up trial and a one-epoch
    warm-up, the defaults' curve (which starts at the ridge fit) was the median: every other
    trial was behind it at epoch 2 and cut there, so nothing but the defaults ever finished.

    none: every trial runs to its end (random search, or a budget large enough to spend).
    benchmarks/tuning_quality.py measures the three on the same sets."""
    if kind == "hyperband":
        return AfterFinished(optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs or "auto", reduction_factor=3))
    if kind == "none":
        return optuna.pruners.NopPruner()
    warmup = max(1, math.ceil(WARMUP_SHARE * epochs)) if epochs else 3
    return optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=warmup, n_min_trials=3)


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def optimise(study: optuna.Study, objective: Callable, n_trials: int | None, timeout: float | None) -> int:
    """Run until the study holds `n_trials` finished trials (or `timeout` seconds pass);
    returns how many trials this call ran.

    Other workers may share the study. Starting a trial is one step under the storage's lock
    (`schema_lock`: a file lock for sqlite, an advisory lock for PostgreSQL): count the finished
    and running trials, and only below `n_trials` create the next one, so workers whose trials
    end at the same moment never start one too many. A worker with nothing left to start waits
    while the others' trials run. A trial whose worker died stops beating: after the grace
    period it is failed and its parameters go back to the queue (RetryHeartbeatStaleTrialCallback),
    and a waiting worker takes them, so the study still ends with `n_trials`."""
    before = finished_trials(study)
    if n_trials is None:
        study.optimize(objective, timeout=timeout, catch=())
        return finished_trials(study) - before
    deadline = None if timeout is None else time.monotonic() + timeout
    storage = getattr(study._storage, "_backend", study._storage)  # Optuna wraps an RDB storage in a cache
    url = getattr(storage, "url", None) or DEFAULT_STORAGE
    while finished_trials(study) < n_trials and (deadline is None or time.monotonic() < deadline):
        trial = _start_trial(study, url, n_trials)
        if trial is None:
            time.sleep(HEARTBEAT_SECONDS)  # the others' trials are running: wait, and fail the dead ones
            with schema_lock(url):
                _fail_dead_trials(study)
            continue
        _run_trial(study, trial, objective)
    return finished_trials(study) - before


def _start_trial(study: optuna.Study, url: str, n_trials: int) -> optuna.Trial | None:
    """The next trial, created only while finished + running trials are below `n_trials`."""
    with schema_lock(url):
        _fail_dead_trials(study)  # a dead worker's trial is not counted as running
        if finished_trials(study) + _running_elsewhere(study) >= n_trials:
            return None
        # Optuna warns that a heartbeat storage belongs to Study.optimize: this loop runs the same
        # heartbeat thread around each trial (_run_trial), so the warning, printed once per trial
        # of every --tune run, says nothing true here
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            return study.ask()


def _run_trial(study: optuna.Study, trial: optuna.Trial, objective: Callable) -> None:
    """What Optuna's own loop does with a trial: its heartbeat while it runs, then its state."""
    from optuna.storages._heartbeat import get_heartbeat_thread  # Optuna's loop uses it the same way

    with get_heartbeat_thread(trial._trial_id, study._storage):
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return
        except BaseException:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
    study.tell(trial, value)


def _fail_dead_trials(study: optuna.Study) -> None:
    """Fail the trials whose worker stopped beating, re-queueing their parameters once. Called
    under the storage's lock only: two workers failing the same dead trial at once could each
    re-queue it, and the study would end with one trial too many."""
    with warnings.catch_warnings():  # marked experimental, like the heartbeat itself
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)


def _running_elsewhere(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
