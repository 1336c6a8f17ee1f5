"""What a head is: parameters with known-good defaults, a search space as data, fit/predict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from challenge.errors import ChallengeError, validation_problems
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
        self.params = self.check_parameters({**self.defaults, **params})
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

    # -- the parameters as a typed schema ---------------------------------------------------
    # Each parameter's type is its default's (bool, int, float, str; anything else, a list or a
    # mapping, is taken as given), so a value from Optuna, a config file or --head-param is
    # checked and converted once, here, and a name the head does not have is refused with the
    # list of those it has. The torch heads also take the loss (challenge.training.losses).
    @classmethod
    def parameter_schema(cls) -> type[BaseModel]:
        schema = cls.__dict__.get("_schema")
        if schema is None:
            fields = {name: (_typed(value), value) for name, value in cls.defaults.items()}
            if hasattr(cls, "build"):
                fields |= {"loss": (str | None, None), "focal_gamma": (float | None, None)}
            schema = create_model(f"{cls.__name__}Parameters", __config__=ConfigDict(extra="forbid"), **fields)
            cls._schema = schema
        return schema

    @classmethod
    def schema_version(cls) -> str:
        """A digest of the parameters' names and types: the saved model records it."""
        import hashlib

        names = sorted(f"{name}:{field.annotation}" for name, field in cls.parameter_schema().model_fields.items())
        return hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]

    @classmethod
    def check_parameters(cls, params: dict) -> dict:
        try:
            checked = cls.parameter_schema().model_validate(params).model_dump()
        except ValidationError as error:
            raise ChallengeError(
                f"head {cls.name!r} parameters: {validation_problems(error)}. Its parameters: {', '.join(sorted(cls.defaults))}."
            ) from None
        # the loss stays unset unless given: the training loop then picks the problem's default
        return {k: v for k, v in checked.items() if k in params}

    def fit(self, train, valid, score: Callable[[np.ndarray, np.ndarray], float], report: Reporter | None = None) -> float:
        """Train on `train`, select on `valid`; returns the best validation score."""
        raise NotImplementedError

    def predict(self, data) -> np.ndarray:
        raise NotImplementedError

    def importance(self) -> tuple[np.ndarray, str] | None:
        """How much the fitted head leans on each pooled input column (ClipFeatures.pooled_columns),
        and what the measure is; None for heads without a native measure (the sequence heads)."""
        return None

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
            "schema": self.schema_version(),
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

        head_cls = get_head(info["name"])
        try:
            head = head_cls(info["params"], Problem(info["problem"]), info["n_outputs"], seed=info["seed"])
        except ChallengeError as error:
            saved, now = info.get("schema", "none (saved before head schemas)"), head_cls.schema_version()
            raise ChallengeError(
                f"{error}\nThe saved model's parameter schema is {saved}, this version's {now}: refit the model with this "
                "version, or read it with the version that saved it."
            ) from None
        head.restore(info["state"], only(arrays, prefix))
        head.history = info["history"]
        return head


def _typed(value):
    """The schema type of a parameter from its default: a float also takes an int."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return float
    if isinstance(value, str):
        return str
    return Any


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
