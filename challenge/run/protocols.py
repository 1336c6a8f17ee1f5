"""How a run fits and scores a candidate model: the protocols a run context plugs in.

- `hold_out`: train on the train split, early stopping and selection on the valid split (the
  leaderboard tracks, fine-tuning, smile-intensity with --folds 1);
- grouped folds: K models over groups (recordings, speakers), selection on the out-of-fold
  score (the smiles tracks; challenge.training.grouped_folds.fold_loop is the one loop);
- `over_seeds`: a whole run repeated with seeds seed..seed+S-1, each a nested MLflow run, and a
  parent run with mean ± sd of every figure (--seeds S).

A protocol's `fit(params, report) -> (score, fitted head)` is what challenge.run.selection tunes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from challenge.config import RunConfig, RunResult
from challenge.progress import say
from challenge.track import TrackSpec


def hold_out(spec: TrackSpec, config: RunConfig, head_cls, train, valid, device: str, checkpoints: Path | None = None):
    """fit(params, report) -> (validation score, fitted head). End-to-end heads keep a checkpoint
    after each epoch under `checkpoints`, named by everything their training depends on, so the
    same command resumes a killed training."""
    score_value = lambda truth, outputs: spec.score(truth, outputs).value  # noqa: E731

    def fit(params: dict, report=None):
        head = head_cls(params, spec.problem, len(spec.labels), seed=config.seed, device=device)
        if checkpoints is not None and head_cls.reads == "media":
            head.checkpoint = checkpoints / training_key(spec, head_cls.name, params, config.seed, train) / "last.pt"
        return head.fit(train, valid, score_value, report), head

    return fit


def checkpoint_root(config: RunConfig) -> Path:
    """Where end-to-end trainings keep their epoch checkpoints: beside the feature store."""
    from challenge.features import FeatureStore

    return Path(FeatureStore(config.store).root) / "training-checkpoints"


def training_key(spec: TrackSpec, head: str, params: dict, seed: int, train) -> str:
    """A training's identity: track, head, parameters (the backbone's settings among them), seed
    and the training items and their targets."""
    items = json.dumps([list(train.ids), spec.name, head, params, seed], sort_keys=True, default=str)
    return hashlib.sha256(items.encode()).hexdigest()[:16]


def over_seeds(spec: TrackSpec, config: RunConfig, run_one: Callable[[RunConfig], RunResult], primary: str = "score") -> RunResult:
    """`run_one` for each seed as a nested run of one parent run, which holds `<figure>.mean` and
    `<figure>.sd` of every figure (seeds.csv, summary.csv) and names the first seed's model, so
    `challenge predict` and `challenge live` given its id load that one."""
    import mlflow
    import pandas as pd

    from challenge.run.baseline import Baseline
    from challenge.run.finish import out_dir
    from challenge.stores import tracking

    seeds = [config.seed + i for i in range(config.seeds or 1)]
    if len(seeds) == 1:
        return run_one(config)
    experiment = tracking.setup(config.tracking_uri, spec.name)
    with mlflow.start_run(experiment_id=experiment, run_name=f"{spec.name}-{config.head}-{len(seeds)}-seeds") as parent:
        mlflow.set_tags({"challenge.kind": "seeds", "track": spec.name, "head": config.head, "seeds": ",".join(map(str, seeds))})
        results = [run_one(config.model_copy(update={"seed": seed, "seeds": 1})) for seed in seeds]
        rows = []
        for seed, r in zip(seeds, results):
            row = {"seed": seed, primary: r.score, **r.details}
            if r.baseline is not None:
                row |= {"baseline_score": r.baseline.score, "gain_over_baseline": r.baseline.gain}
            rows.append(row)
        table = pd.DataFrame(rows)
        figures = table.drop(columns="seed").select_dtypes("number")
        summary = pd.DataFrame({"mean": figures.mean(), "sd": figures.std(ddof=1), "seeds": figures.count()})
        out = out_dir(config, spec, parent.info.run_id)
        table.to_csv(out / "seeds.csv", index=False)
        summary.rename_axis("figure").to_csv(out / "summary.csv")
        mlflow.log_metrics(
            {f"{_metric_name(figure)}.{what}": float(row[what]) for figure, row in summary.iterrows() for what in ("mean", "sd")}
        )
        mlflow.log_metric("score", float(summary.loc[primary, "mean"]))
        mlflow.set_tags({"model": f"runs:/{results[0].run_id}/model", "model_from": f"seed {seeds[0]} (run {results[0].run_id})"})
        mlflow.log_artifacts(str(out))
    say(
        f"mean ± sd over {len(seeds)} seeds ({', '.join(map(str, seeds))}):\n"
        + "\n".join(f"  {figure:<38} {row['mean']:.4f} ± {row['sd']:.4f}" for figure, row in summary.iterrows())
        + f"\nreports: {out.resolve()} (seeds.csv, summary.csv; each seed's run has its own folder)"
        + f"\nmodel: seed {seeds[0]}'s (run {results[0].run_id}); this run's id loads it too"
    )
    details = {f"{figure} {what}": float(row[what]) for figure, row in summary.iterrows() for what in ("mean", "sd")}
    result = RunResult(parent.info.run_id, float(summary.loc[primary, "mean"]), details, results[0].params, None)
    result.trials_run = sum(r.trials_run for r in results)
    if "baseline_score" in summary.index:
        result.baseline = Baseline(
            results[0].baseline.head, float(summary.loc["baseline_score", "mean"]), float(summary.loc["gain_over_baseline", "mean"])
        )
    result.seeds = len(seeds)
    return result


def _metric_name(figure: str) -> str:
    return "".join(c if c.isalnum() or c in "._-/" else "_" for c in str(figure))
