"""What a head is: parameters with known-good defaults, a search space as data, fit/predict."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from challenge.errors import ChallengeError
from challenge.stores.saved_state import load_module, module_arrays, only, put, saved_kind
from challenge.track import Problem

# called after each epoch (or boosting checkpoint) with (step, validation score); may raise
# optuna.TrialPruned to stop a hopeless trial
Reporter = Callable[[int, float], None]


@saved_kind("head")
class Head:
    name: ClassVar[str]
    problems: ClassVar[set[Problem]]
    search_space: ClassVar[dict[str, BaseDistribution]]
    defaults: ClassVar[dict]
    features: ClassVar[tuple[str, ...]] = ()  # the feature sets a run uses when --features is not given (else the track's)
    # "features": the head reads cached features (challenge.run.prepare); "media": it reads media
    # through the track's loader and trains its own backbone (challenge/heads/end_to_end.py)
    reads: ClassVar[str] = "features"
    # where a track pools its clips' features before the head (smile-laugh), True asks for each
    # clip's feature sequences instead (tracks.smiles.clip_windows.ClipWindows)
    sequences: ClassVar[bool] = False

    def __init__(self, params: dict, problem: Problem, n_outputs: int, seed: int = 0, device: str = "cpu"):
        self.require(problem)
        self.params = {**self.defaults, **params}
        self.problem, self.n_outputs, self.seed, self.device = problem, n_outputs, seed, device
        self.history: list[dict] = []  # per-epoch metrics of the last fit

    @classmethod
    def require(cls, problem: Problem) -> None:
        if problem not in cls.problems:
            from challenge.heads import load_all

            others = sorted(name for name, head in load_all().items() if problem in head.problems)
            raise ChallengeError(
                f"head {cls.name!r} does not handle {problem.value}; it handles {sorted(p.value for p in cls.problems)}. "
                f"Heads for {problem.value}: {', '.join(others)}"
            )

    @classmethod
    def default_parameters(cls) -> dict:
        return dict(cls.defaults)

    def fit(self, train, valid, score: Callable[[np.ndarray, np.ndarray], float], report: Reporter | None = None) -> float:
        """Train on `train`, select on `valid`; returns the best validation score."""
        raise NotImplementedError

    def predict(self, data) -> np.ndarray:
        raise NotImplementedError

    # The fitted state as data (challenge.stores.saved_state), never pickled: a head is saved as its
    # registered name, parameters and tensors, and rebuilt through the head registry. The
    # defaults of state/restore serve every head whose fitted part is one torch module in
    # `self.model`, made by `self.build(**self.shape)` from sizes read off the training data.
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able settings, named arrays) from which `restore` rebuilds the fitted head."""
        return {"shape": self.shape}, module_arrays(self.model)

    def restore(self, info: dict, arrays: dict[str, np.ndarray]) -> None:
        self.shape = info["shape"]
        self.model = load_module(self.build(**self.shape), arrays)

    def save_state(self, arrays: dict[str, np.ndarray], prefix: str) -> dict:
        info, named = self.state()
        put(arrays, named, prefix)
        return {
            "name": self.name,
            "params": self.params,
            "problem": self.problem.value,
            "n_outputs": self.n_outputs,
            "seed": self.seed,
            "state": info,
            "history": self.history,
        }

    @classmethod
    def load_state(cls, info: dict, arrays: dict[str, np.ndarray], prefix: str) -> Head:
        from challenge.heads import get_head

        head = get_head(info["name"])(info["params"], Problem(info["problem"]), info["n_outputs"], seed=info["seed"])
        head.restore(info["state"], only(arrays, prefix))
        head.history = info["history"]
        return head


def suggest(trial, space: dict[str, BaseDistribution]) -> dict:
    """Optuna suggestions from a search space declared as distributions."""
    params = {}
    for name, dist in space.items():
        if isinstance(dist, FloatDistribution):
            params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
        elif isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
        elif isinstance(dist, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, dist.choices)
        else:
            raise TypeError(f"unsupported distribution for {name}: {dist}")
    return params
