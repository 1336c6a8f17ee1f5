"""Combining the members' outputs: mean, score-weighted mean, stacking, own-subset weighting.

Outputs are what heads produce (values, class or AU probabilities), stacked per role:
`outputs[r]` is role r's [rows, C] over the evaluation rows. A rule with anything to learn
(weights, a stacking layer) is scored by cross-fitting: fitted on the other items' rows, applied
to this item's rows, so no combined score is measured on rows the rule was fitted on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from challenge.track import Problem

Evaluate = Callable[[np.ndarray, np.ndarray], float]  # (truth rows, output rows) -> track score


@dataclass
class Context:
    """What the rules may look at besides the outputs."""

    problem: Problem
    evaluate: Evaluate
    role_subsets: list[int | None]  # the background subset each role was trained for (None: all data)
    own_weight: float = 2.0


class Rule:
    name: str

    def fit(self, outputs: np.ndarray, truth: np.ndarray, context: Context) -> object:
        return None

    def apply(self, state, outputs: np.ndarray, row_subsets: np.ndarray, context: Context) -> np.ndarray:
        raise NotImplementedError


class Mean(Rule):
    name = "mean"

    def apply(self, state, outputs, row_subsets, context):
        return outputs.mean(0)


class ScoreWeighted(Rule):
    """Weights proportional to each role's score above zero (chance for F1 and Pearson)."""

    name = "weighted"

    def fit(self, outputs, truth, context):
        return score_weights([context.evaluate(truth, o) for o in outputs])

    def apply(self, weights, outputs, row_subsets, context):
        return np.tensordot(weights, outputs, axes=1)


class OwnSubset(Rule):
    """Members trained for a row's own background subset count `own_weight` times."""

    name = "own-subset"

    def apply(self, state, outputs, row_subsets, context):
        roles = np.array([-1 if s is None else s for s in context.role_subsets])
        weights = np.where(roles[:, None] == row_subsets[None, :], context.own_weight, 1.0)  # [R, rows]
        weights = weights / weights.sum(0, keepdims=True)
        return (weights[:, :, None] * outputs).sum(0)


class Stacking(Rule):
    """Ridge per output (regression), multinomial logistic over all roles' probabilities
    (classes) or one logistic per AU over the roles' probabilities for that AU."""

    name = "stacking"

    def fit(self, outputs, truth, context):
        from sklearn.linear_model import LogisticRegression, Ridge

        R, rows, C = outputs.shape
        if context.problem in (Problem.FRAME_CLASSIFICATION, Problem.CLIP_CLASSIFICATION):
            labels = truth.reshape(-1).astype(int)
            keep = labels >= 0
            model = LogisticRegression(max_iter=500).fit(_logit_features(outputs)[keep], labels[keep])
            return ("classes", model, C)
        models = []
        for j in range(C):
            x = outputs[:, :, j].T
            if context.problem == Problem.FRAME_MULTILABEL:
                keep = ~(truth == -1).any(1)
                y = truth[keep, j].astype(int)
                models.append(LogisticRegression(max_iter=500).fit(_logit(x[keep]), y) if len(np.unique(y)) == 2 else None)
            else:
                keep = truth[:, j] != -5 if context.problem == Problem.FRAME_REGRESSION else np.ones(rows, bool)
                models.append(Ridge(alpha=1.0).fit(x[keep], truth[keep, j]))
        return ("columns", models, C)

    def apply(self, state, outputs, row_subsets, context):
        kind, model, C = state
        if kind == "classes":
            probabilities = np.zeros((outputs.shape[1], C))
            probabilities[:, model.classes_] = model.predict_proba(_logit_features(outputs))
            return probabilities
        columns = []
        for j, column_model in enumerate(model):
            x = outputs[:, :, j].T
            if column_model is None:  # an AU with one class in the fitting rows: plain mean
                columns.append(x.mean(1))
            elif context.problem == Problem.FRAME_MULTILABEL:
                columns.append(column_model.predict_proba(_logit(x))[:, 1])
            else:
                columns.append(column_model.predict(x))
        return np.stack(columns, 1)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-5, 1 - 1e-5)
    return np.log(p / (1 - p))


def _logit_features(outputs: np.ndarray) -> np.ndarray:
    """[rows, R * C] log-probabilities of every role side by side."""
    return np.concatenate([np.log(np.clip(o, 1e-6, 1)) for o in outputs], axis=1)


RULES: dict[str, Rule] = {rule.name: rule for rule in (Mean(), ScoreWeighted(), Stacking(), OwnSubset())}


def score_weights(scores: list[float]) -> np.ndarray:
    """Normalised max(score, 0); uniform when no role scores above zero."""
    weights = np.maximum(np.nan_to_num(np.asarray(scores, dtype=float)), 0.0)
    return weights / weights.sum() if weights.sum() > 0 else np.full(len(scores), 1.0 / len(scores))


def applicable_rules(context: Context) -> list[str]:
    names = ["mean"]
    if len(context.role_subsets) > 1:
        names.append("weighted")
    names.append("stacking")  # with one role it recalibrates that role's outputs
    if any(s is not None for s in context.role_subsets):
        names.append("own-subset")
    return names


def cross_fit(
    rule: Rule,
    outputs: np.ndarray,
    truth: np.ndarray,
    row_items: np.ndarray,
    row_subsets: np.ndarray,
    context: Context,
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """[rows, C] combined outputs where each item's rows come from the rule fitted without them."""
    items = np.unique(row_items)
    if type(rule).fit is Rule.fit:  # nothing learned: no need to hold anything out
        return rule.apply(None, outputs, row_subsets, context)
    fold_of_item = dict(zip(items[np.random.default_rng(seed).permutation(len(items))], np.arange(len(items)) % min(folds, len(items))))
    row_folds = np.array([fold_of_item[i] for i in row_items])
    combined = np.zeros(outputs.shape[1:], dtype=np.float64)
    for f in np.unique(row_folds):
        held = row_folds == f
        state = rule.fit(outputs[:, ~held], truth[~held], context)
        combined[held] = rule.apply(state, outputs[:, held], row_subsets[held], context)
    return combined
