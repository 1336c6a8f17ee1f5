"""How a run fits and scores a candidate model: the registered protocols (--protocol), and the
repetition over seeds that wraps any of them.

- `hold-out` (`HoldOut`): train on the train split, early stopping and selection on the valid
  split (the leaderboard tracks, fine-tuning, smile-intensity with --folds 1);
- `grouped-folds` (`GroupedFolds`): K models over train+valid, a group (BAH's participant) kept
  in one fold, each stopping early on its held fold; selection on the out-of-fold score, and the
  K models average their outputs on the test set (small clip sets, where one valid split decides
  too much). Its loop is challenge.training.grouped_folds.fold_loop, the one under every fold
  fitter (the smiles tracks' own, the per-frame folds, the estimate that selected nothing);
- `over_seeds`: a whole run repeated with seeds seed..seed+S-1, each a nested MLflow run, and a
  parent run with mean ± sd of every figure (--seeds S). It wraps whichever protocol the run
  uses, so it is an option beside --protocol, not a choice among them.

A protocol is a `Protocol` subclass registered as an entry point (group `challenge.protocols`);
its `fitter(train, valid)` gives the `fit(params, report) -> (score, fitted model)` that
challenge.run.selection tunes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np

from challenge.config import RunConfig, RunResult
from challenge.progress import say
from challenge.run.selection import AveragedHeads
from challenge.stores.saved_state import describe, rebuild, saved_kind
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


def get_protocol(name: str) -> type[Protocol]:
    """The protocol class registered under `name` (an unknown name lists the registered ones)."""
    from challenge.config import PROTOCOLS
    from challenge.registry import registered_class

    return registered_class(PROTOCOLS, name, Protocol, "protocol")


class Protocol:
    """How one candidate model is fitted and scored in a run. Subclasses set `name` (their entry
    point's) and `summary`, and give `fitter`; the runner asks the same protocol for the
    validation outputs it reports and for the linear baseline beside them, so the head and the
    baseline are always scored the same way."""

    name: ClassVar[str]
    summary: ClassVar[str]
    in_study_name: ClassVar[bool] = True  # part of the tuning key (hold-out is not, so its studies keep their names)
    # after tuning, K refits over train+valid are an estimate that selected nothing only if the
    # tuning scored candidates on fewer clips than those (hold-out: on valid alone)
    unselected_estimate: ClassVar[bool] = True

    def __init__(self, spec: TrackSpec, config: RunConfig, head_cls, device: str):
        self.spec, self.config, self.head_cls, self.device = spec, config, head_cls, device

    def check(self, end_to_end: bool) -> None:
        """Refuse, before any training, a run this protocol cannot do (ChallengeError)."""

    def fitter(self, train, valid, checkpoints: Path | None = None) -> Callable:
        """fit(params, report=None) -> (score the tuner maximises, fitted model)."""
        raise NotImplementedError

    def steps(self, epochs: int | None) -> int | None:
        """How many times a candidate reports its score while it trains (the pruner's budget)."""
        return epochs

    def validation_outputs(self, model, valid):
        """The outputs on `valid` the run's score and reports are computed from; None: the
        model's own predictions there (challenge.run.finish computes them)."""
        return None

    def baseline(self, head_score: float, train, valid):
        """The linear model beside the run's score (challenge.run.baseline), or None."""
        from challenge.run.baseline import linear_baseline

        config = self.config
        return linear_baseline(self.spec, config.head, head_score, train, valid, config.seed, config.tune_threshold)


class HoldOut(Protocol):
    name = "hold-out"
    in_study_name = False
    summary = "train on the train split; early stopping, selection and the score on the valid split"

    def fitter(self, train, valid, checkpoints: Path | None = None) -> Callable:
        return hold_out(self.spec, self.config, self.head_cls, train, valid, self.device, checkpoints)


class GroupedFolds(Protocol):
    name = "grouped-folds"
    unselected_estimate = False  # its tuning scored every labelled clip out of fold already
    summary = (
        "K models over train+valid (--protocol-folds), groups kept whole, each stopping early on its held fold; "
        "selection on the out-of-fold score; the K models average their outputs on the test set"
    )

    def check(self, end_to_end: bool) -> None:
        from challenge.errors import ChallengeError

        config, spec = self.config, self.spec
        reasons = (
            (spec.problem.per_frame, "it scores frames"),
            (end_to_end, f"{self.head_cls.name} is an end-to-end head"),
            (config.zero_shot, "--zero-shot trains on another track's labels"),
        )
        reason = next((why for applies, why in reasons if applies), None)
        if reason:
            raise ChallengeError(
                f"--protocol grouped-folds: clip tracks on cached features (emi, ah); the {spec.name} run cannot ({reason}). "
                "Use --protocol hold-out (smile-intensity has its own --folds)."
            )
        if config.select == "out-of-fold":
            raise ChallengeError(
                "--select out-of-fold chooses between models fitted on the train split; with --protocol grouped-folds the run's "
                "score is already out of fold, and its linear baseline is fitted on the same folds: leave --select out."
            )

    def steps(self, epochs: int | None) -> int | None:
        return self.config.protocol_folds  # a candidate reports its running out-of-fold score after each fold

    def fitter(self, train, valid, checkpoints: Path | None = None) -> Callable:
        return self._fitter(self.head_cls, train, valid)

    def _fitter(self, head_cls, train, valid) -> Callable:
        from challenge.run.estimate import out_of_fold, pooled_folds

        spec, config = self.spec, self.config
        pool, folds = pooled_folds(spec, train, valid, config.seed, config.protocol_folds)

        def fit(params: dict, report=None):
            make = lambda fold: head_cls(params, spec.problem, len(spec.labels), seed=config.seed + fold, device=self.device)  # noqa: E731
            outputs, members, history = out_of_fold(spec, make, pool, folds, config.seed, stop_on="held", report=report)
            return spec.score(pool.targets, outputs).value, FoldModels(members, outputs[len(train) :], list(valid.ids), history)

        return fit

    def validation_outputs(self, model, valid):
        return model.held_out(valid)

    def baseline(self, head_score: float, train, valid):
        from challenge.heads import get_head
        from challenge.heads.linear import baseline_head_name
        from challenge.run.baseline import record_baseline, score_outputs

        name = baseline_head_name(self.spec.problem)
        if self.config.head == name or not np.isfinite(head_score):
            return None
        _, model = self._fitter(get_head(name), train, valid)({})
        value = score_outputs(self.spec, valid, model.held_out(valid), self.config.tune_threshold)
        found = record_baseline(name, head_score, value, self.spec.direction)
        found.compared = f"the same {self.config.protocol_folds} grouped folds and features"
        return found


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
    result.trials_run, result.tuned = sum(r.trials_run for r in results), all(r.tuned for r in results)
    if "baseline_score" in summary.index:
        result.baseline = Baseline(
            results[0].baseline.head, float(summary.loc["baseline_score", "mean"]), float(summary.loc["gain_over_baseline", "mean"])
        )
    result.seeds = len(seeds)
    return result


def _metric_name(figure: str) -> str:
    return "".join(c if c.isalnum() or c in "._-/" else "_" for c in str(figure))


@saved_kind("fold-models")
class FoldModels(AveragedHeads):
    """The K fold models of a grouped-folds run: their outputs averaged on new clips. Each valid
    clip's held-out output (by the fold model that did not train on it) is what the run reports
    and post-processes; it served the run and is not saved."""

    def __init__(self, members: list, held: np.ndarray | None = None, held_ids: list[str] | None = None, history=None):
        super().__init__(members)
        self.held, self.held_ids, self.history = held, held_ids or [], history or []

    @property
    def name(self) -> str:
        return self.members[0].name

    def held_out(self, valid) -> np.ndarray:
        if list(valid.ids) != self.held_ids:
            raise ValueError("held_out: these are not the valid clips the fold models were fitted with")
        return self.held

    def importance(self) -> tuple[np.ndarray, str] | None:
        """The members' measure, averaged (None when a member has none)."""
        each = [member.importance() if hasattr(member, "importance") else None for member in self.members]
        if any(found is None for found in each):
            return None
        return np.mean([values for values, _ in each], axis=0), f"{each[0][1]}, mean over {len(each)} fold models"

    def save_state(self, arrays: dict, prefix: str) -> dict:
        return {"members": [describe(m, arrays, f"{prefix}members.{i}.") for i, m in enumerate(self.members)], "history": self.history}

    @classmethod
    def load_state(cls, info: dict, arrays: dict, prefix: str) -> FoldModels:
        members = [rebuild(m, arrays, f"{prefix}members.{i}.") for i, m in enumerate(info["members"])]
        return cls(members, history=info.get("history", []))
