"""`challenge multitask`: one run that trains one model for AU, EXPR and VA on the same
Aff-Wild2 root (challenge.training.multitask_model) and writes each task's official submission.

    read + extract each task's videos (one shared store: a video in several tasks is extracted
    once) -> one normalisation over the union of the training videos -> train the shared model
    -> per task, in a nested MLflow run: validation score, smoothing and thresholds fitted on
    validation, the validated submission, the linear baseline beside the score

All runs are in the MLflow experiment `affwild-multitask`; each task's nested run is tagged with
its task and holds the same artifacts as a single-task run of that track (outputs.npz included).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from challenge.config import RunConfig
from challenge.errors import ChallengeError
from challenge.progress import say
from challenge.stores.reports import MULTITASK_EXPERIMENT as EXPERIMENT

TASKS = ("expr", "au", "va")


@dataclass
class TaskResult:
    task: str
    run_id: str
    score: float
    baseline: float | None
    submission: Path | None


@dataclass
class MultitaskResult:
    run_id: str
    score: float  # the weighted mean of the tasks' validation scores at the best epoch
    tasks: list[TaskResult] = field(default_factory=list)


class _TaskHead:
    """The shared model seen as one task's head, for the runs' finishing steps."""

    def __init__(self, model, spec, params: dict, device: str, history: list[dict]):
        from challenge.training.multitask_model import TaskView

        self.view, self.problem, self.params, self.device, self.history = TaskView(model, spec.name), spec.problem, params, device, history
        self.name = "multitask"

    def predict(self, data):
        from challenge.training.frame_loop import predict_frames

        return predict_frames(self.view, self.problem, data, self.params["window"], self.device)


def parse_weights(tasks: list[str], text: str | None) -> list[float]:
    if not text:
        return [1.0] * len(tasks)
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        weights = []
    if len(weights) != len(tasks) or not all(math.isfinite(w) and w > 0 for w in weights):  # nan > 0 is False too
        raise ChallengeError(
            f"--task-weights {text}: give one positive weight per task (finite), in the order of --tasks ({','.join(tasks)})."
        )
    return weights


def _checkpoint(config: RunConfig, tasks: list[str], weights: list[float], params: dict, fingerprints: dict, keys: dict) -> Path:
    """Where this training keeps its epoch checkpoint, named by everything that decides its
    weights (tasks, weights, parameters, seed, the data and features, a control's shuffling):
    the same command after a kill resumes from it; another command never does."""
    import hashlib

    from challenge.run.protocols import checkpoint_root

    identity = json.dumps([tasks, weights, params, config.seed, config.shuffle_labels, fingerprints, keys], sort_keys=True, default=str)
    return checkpoint_root(config) / f"multitask-{hashlib.sha256(identity.encode()).hexdigest()[:16]}" / "last.pt"


def run_multitask(config: RunConfig, tasks: list[str], weights: list[float], params: dict | None = None) -> MultitaskResult:
    import mlflow

    from challenge.postprocess import PostProcess
    from challenge.registry import get_track
    from challenge.run.baseline import linear_baseline
    from challenge.run.context import RunContext
    from challenge.run.finish import finish
    from challenge.run.prepare import prepare_features
    from challenge.training.frame_data import FrameFeatures
    from challenge.training.multitask_model import DEFAULTS, MultiTaskFrameModel, Task, fit_multitask

    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks or len(set(tasks)) != len(tasks):
        raise ChallengeError(f"--tasks {','.join(tasks)}: choose distinct tasks among {', '.join(TASKS)}.")
    params = {
        **DEFAULTS,
        **({"epochs": config.epochs} if config.epochs else {}),
        **({"window": config.window} if config.window else {}),
        **(params or {}),
    }
    specs = {t: get_track(t) for t in tasks}
    prepared, fingerprints, keys = {}, {}, {}
    for t in tasks:
        say(f"[bold]{t}[/]: reading the videos that carry its labels and their features")
        samples, splits, keys, _ = prepare_features(specs[t], config.model_copy(update={"track": t}))
        if splits["valid"] is None or not len(splits["valid"]):
            raise ChallengeError(f"{config.data}: no labelled validation videos for {t}: a multi-task run selects its epoch on them.")
        prepared[t], fingerprints[t] = splits, samples.fingerprint()
    # one normalisation for the shared encoder: over the training videos of every task
    normaliser = FrameFeatures.join([prepared[t]["train"] for t in tasks]).fit_normalisation()
    for splits in prepared.values():
        for data in splits.values():
            if data is not None:
                data.normalise_with(normaliser)
    first = prepared[tasks[0]]["train"]
    tagged = dataclasses.replace(specs[tasks[0]], name=EXPERIMENT)  # the runs' experiment and track tag
    context = RunContext(tagged, config.model_copy(update={"head": "multitask"}), kind="multitask")
    logged = (
        {f"task_weight.{t}": w for t, w in zip(tasks, weights)} | {"tasks": ",".join(tasks)} | {f"head.{k}": v for k, v in params.items()}
    )
    with context.start(
        "+".join(fingerprints[t] for t in tasks),
        keys,
        name=f"multitask-{'+'.join(tasks)}-{'+'.join(config.features)}",
        params=logged,
        sections={"multitask": {"tasks": tasks, "weights": weights, "params": params}},
    ) as run:
        model = MultiTaskFrameModel(
            first.dim, params["hidden"], params["layers"], params["dropout"], {t: len(specs[t].labels) for t in tasks}
        )
        task_data = [Task(specs[t], w, prepared[t]["train"], prepared[t]["valid"]) for t, w in zip(tasks, weights)]
        best, history = fit_multitask(
            model,
            task_data,
            params,
            config.seed,
            context.device,
            checkpoint=_checkpoint(config, tasks, weights, params, fingerprints, keys),
        )
        mlflow.log_metric("score", best)  # each task's own score is logged by its nested run's finish below
        result = MultitaskResult(run.run_id, best)
        for t in tasks:
            task_config = config.model_copy(
                update={"track": t, "head": "multitask", "out": str(Path(config.out) / t) if config.out else None}
            )
            task_context = RunContext(dataclasses.replace(specs[t], name=EXPERIMENT), task_config, kind="multitask-task")
            with task_context.start(fingerprints[t], keys, name=f"{t}-of-multitask", task=t) as task_run:
                head = _TaskHead(model, specs[t], params, context.device, history)
                splits = prepared[t]
                done = finish(
                    specs[t],
                    task_config,
                    head,
                    PostProcess.for_track(specs[t]),
                    splits["valid"],
                    splits["test"],
                    task_run.run_id,
                    params,
                    {"source": "multitask", "run": run.run_id},
                )
                baseline = linear_baseline(specs[t], "multitask", done.score, splits["train"], splits["valid"], config.seed)
                if baseline is not None:
                    say(f"{t}: {done.score:.4f} (smoothed); {baseline.describe()}")
            result.tasks.append(TaskResult(t, task_run.run_id, done.score, baseline.score if baseline else None, done.submission))
        (context.out / "multitask.json").write_text(json.dumps(dataclasses.asdict(result), indent=1, default=str))
        mlflow.log_artifact(str(context.out / "multitask.json"))
    return result
