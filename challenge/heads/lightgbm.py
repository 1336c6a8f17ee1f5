"""LightGBM on pooled (mean, std over time) features: a fast baseline, one booster per output
(values), or one multi-class booster (classes, balanced by weights as the logistic baseline is)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
from optuna.distributions import FloatDistribution, IntDistribution

from challenge.heads.base import Head
from challenge.track import Problem
from challenge.training.inputs import pooled

CHECK_EVERY = 25  # boosting rounds between validation checks (reporting each round is slow)


class LightGBMHead(Head):
    name = "lightgbm"
    problems = {Problem.CLIP_REGRESSION, Problem.CLIP_CLASSIFICATION}
    defaults = {
        "num_leaves": 15,
        "learning_rate": 0.05,
        "n_estimators": 300,
        "min_child_samples": 10,
        "feature_fraction": 0.8,
        "lambda_l2": 1.0,
    }
    search_space = {
        "num_leaves": IntDistribution(4, 63, log=True),
        "learning_rate": FloatDistribution(0.01, 0.2, log=True),
        "n_estimators": IntDistribution(100, 800, step=50),
        "min_child_samples": IntDistribution(5, 50),
        "feature_fraction": FloatDistribution(0.3, 1.0),
        "lambda_l2": FloatDistribution(1e-3, 10.0, log=True),
    }

    def _booster_params(self) -> dict:
        p = self.params
        classes = {"objective": "multiclass", "num_class": self.n_outputs} if self.classify else {"objective": "regression"}
        return classes | {
            "num_leaves": p["num_leaves"],
            "learning_rate": p["learning_rate"],
            "min_child_samples": p["min_child_samples"],
            "feature_fraction": p["feature_fraction"],
            "lambda_l2": p["lambda_l2"],
            "seed": self.seed,
            "verbosity": -1,
            "num_threads": 2,
            "deterministic": True,
        }

    def fit(self, train, valid, score, report=None) -> float:
        x_train, x_valid = pooled(train), pooled(valid)
        if self.classify:
            from sklearn.utils.class_weight import compute_sample_weight

            labels = np.asarray(train.targets).reshape(-1).astype(int)
            datasets = [lgb.Dataset(x_train, labels, weight=compute_sample_weight("balanced", labels), free_raw_data=False)]
        else:
            datasets = [lgb.Dataset(x_train, np.ascontiguousarray(train.targets[:, j]), free_raw_data=False) for j in range(self.n_outputs)]
        self.boosters = [None] * len(datasets)
        self.history, rounds = [], 0
        while rounds < self.params["n_estimators"]:
            step = min(CHECK_EVERY, self.params["n_estimators"] - rounds)
            self.boosters = [
                lgb.train(self._booster_params(), data, num_boost_round=step, init_model=booster, keep_training_booster=True)
                for data, booster in zip(datasets, self.boosters)
            ]
            rounds += step
            value = score(valid.targets, self._predict_pooled(x_valid))
            self.history.append({"epoch": rounds, "valid_score": value})
            if report is not None:
                report(rounds, value)
        return self.history[-1]["valid_score"]

    @property
    def classify(self) -> bool:
        return self.problem == Problem.CLIP_CLASSIFICATION

    def _predict_pooled(self, x: np.ndarray) -> np.ndarray:
        if self.classify:  # class probabilities [N, C]
            return np.asarray(self.boosters[0].predict(x)).reshape(len(x), self.n_outputs)
        return np.clip(np.stack([b.predict(x) for b in self.boosters], axis=1), 0, 1)

    def predict(self, data):
        return self._predict_pooled(pooled(data))

    def importance(self) -> tuple[np.ndarray, str]:
        return np.sum([b.feature_importance("gain") for b in self.boosters], axis=0), "total split gain"

    def state(self):
        return {"boosters": [b.model_to_string() for b in self.boosters]}, {}  # LightGBM's own text format

    def restore(self, info, arrays) -> None:
        self.boosters = [lgb.Booster(model_str=text) for text in info["boosters"]]
