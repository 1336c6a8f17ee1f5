"""Linear heads: the baseline every run is compared with, and heads of their own (`--head ridge`,
`--head logistic`). Clips are pooled to mean and std over time; frames get their own features
plus the mean and std over a centred window of `context` frames, so a linear model sees some
temporal context too.

Ridge chooses its penalty per output by efficient leave-one-out on the training rows (one alpha
per emotion), so it has nothing left to tune; logistic regression tunes C."""

from __future__ import annotations

import numpy as np
from optuna.distributions import FloatDistribution

from challenge.heads.base import Head
from challenge.track import Problem

ALPHAS = np.logspace(-2, 5, 15)  # ridge penalties tried per output (features are standardised)
MISSING = {Problem.FRAME_REGRESSION: -5, Problem.FRAME_CLASSIFICATION: -1, Problem.FRAME_MULTILABEL: -1}  # invalid-frame markers


def baseline_head_name(problem: Problem) -> str:
    """The linear baseline of a problem: ridge for values, logistic regression for classes and AUs."""
    return "ridge" if problem in (Problem.CLIP_REGRESSION, Problem.FRAME_REGRESSION) else "logistic"


def fit_ridge(x: np.ndarray, y: np.ndarray, missing: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge with one alpha per output column, chosen by efficient leave-one-out; returns
    ([C, D] weights, [C] biases, [C] alphas). Without missing values every column is fitted
    from one decomposition of `x`; otherwise each column on the rows annotated in it."""
    from sklearn.linear_model import RidgeCV

    if missing is None or not (y == missing).any():
        model = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(x, y)
        return np.atleast_2d(model.coef_), np.atleast_1d(model.intercept_), np.atleast_1d(model.alpha_)
    models = [RidgeCV(alphas=ALPHAS).fit(x[y[:, j] != missing], y[y[:, j] != missing, j]) for j in range(y.shape[1])]
    return np.stack([m.coef_ for m in models]), np.array([m.intercept_ for m in models]), np.array([m.alpha_ for m in models])


def logistic_regression(c: float):
    """The logistic regression of the baselines and of `--head logistic`: balanced class weights."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced")


def logistic_weights(x: np.ndarray, y: np.ndarray, classes: int, c: float) -> tuple[np.ndarray, np.ndarray]:
    """[classes, D] weights and [classes] biases (float32) whose softmax gives the probabilities
    of `logistic_regression(c)` fitted on (x, y), for a linear path to start from. A class absent
    from y gets bias -20 (never chosen at the start); sklearn's binary fit is one logit, the
    second class's against the first."""
    fitted = logistic_regression(c).fit(x, y)
    weights = np.zeros((classes, x.shape[1]), np.float32)
    biases = np.full(classes, -20.0, np.float32)
    present = fitted.classes_
    if len(present) == 2:
        weights[present[1]], biases[present[1]], biases[present[0]] = fitted.coef_[0], fitted.intercept_[0], 0.0
    else:
        weights[present], biases[present] = fitted.coef_, fitted.intercept_
    return weights, biases


def pooled_rows(data) -> np.ndarray:
    """Per clip [mean, std] over time (ClipFeatures), or the pooled matrix of smiles clip sets."""
    if hasattr(data, "matrix"):
        return data.matrix
    from challenge.training.inputs import pooled

    return pooled(data)


def frame_rows(features: np.ndarray, context: int) -> np.ndarray:
    """[frames, 3D]: each frame's features, then their mean and std over a centred window."""
    if context <= 1:
        return features
    from scipy.ndimage import uniform_filter1d

    mean = uniform_filter1d(features, size=context, axis=0, mode="nearest")
    square = uniform_filter1d(features * features, size=context, axis=0, mode="nearest")
    return np.concatenate([features, mean, np.sqrt(np.maximum(square - mean * mean, 0))], axis=1)


def frame_training_rows(data, context: int, max_frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and labels of (a seeded sample of at most `max_frames` of) the training frames: a
    linear fit needs far fewer frames than Aff-Wild2 holds, and memory stays bounded."""
    counts = np.asarray(data.lengths)
    total = int(counts.sum())
    keep = np.sort(np.random.default_rng(seed).choice(total, size=min(max_frames, total), replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rows, labels = [], []
    for i in range(len(data)):
        local = keep[(keep >= starts[i]) & (keep < starts[i] + counts[i])] - starts[i]
        if len(local):
            rows.append(frame_rows(data.video(i)[0], context)[local])
            labels.append(data.labels[i][local])
    return np.concatenate(rows), np.concatenate(labels)


class LinearHead(Head):
    """What the linear heads share: the design matrix of clips or frames, and per-video outputs."""

    def design(self, data) -> list[np.ndarray]:
        if self.problem.per_frame:
            return [frame_rows(data.video(i)[0], self.params["context"]) for i in range(len(data))]
        return [pooled_rows(data)]

    def training_rows(self, data) -> tuple[np.ndarray, np.ndarray]:
        if self.problem.per_frame:
            return frame_training_rows(data, self.params["context"], self.params["max_frames"], self.seed)
        return pooled_rows(data), data.targets

    def fit(self, train, valid, score, report=None) -> float:
        self.fit_training(train)
        truth = valid.targets() if self.problem.per_frame else valid.targets
        outputs = self.predict(valid)
        value = score(truth, np.concatenate(outputs) if self.problem.per_frame else outputs)
        self.history = [{"epoch": 0, "valid_score": value}]
        if report is not None:
            report(0, value)
        return value

    def fit_training(self, train) -> None:
        """The fit itself: nothing is selected on validation."""
        self.fit_rows(*self.training_rows(train))

    def predict(self, data):
        outputs = [self.predict_rows(x) for x in self.design(data)]
        return outputs if self.problem.per_frame else outputs[0]

    def fit_rows(self, x: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def predict_rows(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class RidgeHead(LinearHead):
    """Ridge regression on pooled features, one alpha per output chosen by leave-one-out."""

    name = "ridge"
    problems = {Problem.CLIP_REGRESSION, Problem.FRAME_REGRESSION}
    defaults = {"context": 31, "max_frames": 20000}
    search_space: dict = {}  # alpha is chosen per output inside the fit

    def fit_rows(self, x, y) -> None:
        self.low, self.high = (0.0, 1.0) if self.problem == Problem.CLIP_REGRESSION else (-1.0, 1.0)
        self.weights, self.biases, self.alphas = fit_ridge(x, y, MISSING.get(self.problem))  # VA marks a missing value -5

    def predict_rows(self, x) -> np.ndarray:
        return np.clip(x @ self.weights.T + self.biases, self.low, self.high)

    def importance(self) -> tuple[np.ndarray, str] | None:
        if self.problem.per_frame:
            return None  # frame rows hold a context window of each column, not the pooled columns
        return np.abs(self.weights).mean(0), "mean |coefficient| over outputs, on normalised features"

    def state(self):
        return {"low": self.low, "high": self.high}, {"weights": self.weights, "biases": self.biases, "alphas": self.alphas}

    def restore(self, info, arrays) -> None:
        self.low, self.high = info["low"], info["high"]
        self.weights, self.biases, self.alphas = arrays["weights"], arrays["biases"], arrays["alphas"]


class LogisticHead(LinearHead):
    """Logistic regression (balanced class weights): multinomial for classes, one per AU."""

    name = "logistic"
    problems = {Problem.CLIP_CLASSIFICATION, Problem.FRAME_CLASSIFICATION, Problem.FRAME_MULTILABEL}
    defaults = {"C": 1.0, "context": 31, "max_frames": 20000}
    search_space = {"C": FloatDistribution(1e-3, 1e2, log=True)}

    def _model(self):
        return logistic_regression(self.params["C"])

    def fit_rows(self, x, y) -> None:
        if self.problem == Problem.FRAME_MULTILABEL:
            rows = ~(y == -1).any(1)
            self.models = [self._fit_or_constant(x[rows], y[rows, j].astype(int)) for j in range(y.shape[1])]
            return
        labels = y[:, 0].astype(int) if y.ndim == 2 else y.astype(int)
        rows = labels >= 0
        self.model = self._model().fit(x[rows], labels[rows])

    def _fit_or_constant(self, x, labels):
        """An AU with one value in the training frames gets that value's rate, not an error."""
        return self._model().fit(x, labels) if len(np.unique(labels)) > 1 else float(labels.mean() if len(labels) else 0.0)

    def predict_rows(self, x) -> np.ndarray:
        if self.problem == Problem.FRAME_MULTILABEL:
            return np.stack([np.full(len(x), m) if isinstance(m, float) else m.predict_proba(x)[:, 1] for m in self.models], axis=1)
        probabilities = np.zeros((len(x), self.n_outputs))
        probabilities[:, self.model.classes_] = self.model.predict_proba(x)
        return probabilities

    def importance(self) -> tuple[np.ndarray, str] | None:
        if self.problem != Problem.CLIP_CLASSIFICATION:
            return None
        return np.abs(self.model.coef_).mean(0), "mean |coefficient| over classes, on normalised features"

    def predict_each(self, data) -> dict[str, np.ndarray]:
        """The smiles reports ask every clip classifier for its outputs by modality."""
        return {"+".join(data.blocks): self.predict(data)}

    def state(self):
        arrays: dict[str, np.ndarray] = {}
        if self.problem != Problem.FRAME_MULTILABEL:
            return {"models": None}, _logistic_arrays(self.model, "model.", arrays)
        kinds = [m if isinstance(m, float) else "fitted" for m in self.models]  # an AU with one value keeps its rate
        for j, m in enumerate(self.models):
            if not isinstance(m, float):
                _logistic_arrays(m, f"models.{j}.", arrays)
        return {"models": kinds}, arrays

    def restore(self, info, arrays) -> None:
        if info["models"] is None:
            self.model = self._restored(arrays, "model.")
        else:
            self.models = [m if isinstance(m, float) else self._restored(arrays, f"models.{j}.") for j, m in enumerate(info["models"])]

    def _restored(self, arrays: dict[str, np.ndarray], prefix: str):
        """A fitted sklearn model from its coefficients: predict_proba reads nothing else."""
        model = self._model()
        model.coef_, model.intercept_, model.classes_ = (arrays[prefix + k] for k in ("coef", "intercept", "classes"))
        model.n_features_in_ = model.coef_.shape[1]
        return model


def _logistic_arrays(model, prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    arrays.update({prefix + "coef": model.coef_, prefix + "intercept": model.intercept_, prefix + "classes": model.classes_})
    return arrays
