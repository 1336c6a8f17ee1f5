"""What happens between a model's outputs and the submitted decisions, as one object: temporal
smoothing (sigma), the decision rule (argmax, per-AU thresholds, identity) and the thresholds.
Fitted on validation (or out-of-fold) outputs, applied to test outputs; single runs and
ensembles use the same object, and its fitted state is logged with the run and saved with the
model, so `challenge predict` decides exactly as the run did."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from challenge.frame_metrics import tune_au_thresholds
from challenge.metrics import Score
from challenge.smoothing import DEFAULT_SIGMAS, smooth_videos, tune_sigma
from challenge.track import Problem, TrackSpec


@dataclass
class PostProcess:
    problem: Problem
    sigma: float = 0.0  # Gaussian smoothing within each video, in frames (frame tracks)
    thresholds: list[float] | None = None  # per AU (multi-label tracks)
    scores_by_sigma: dict[float, float] = field(default_factory=dict)  # the fit's record
    # two classes: class 1 is decided when its probability exceeds this (0.5 unless tuned)
    threshold: float = 0.5
    tune_threshold: bool = False  # --tune-threshold: fit() chooses it on the rows it is given
    score_at_half: float | None = None  # the fit's score with 0.5, beside the tuned threshold's

    @classmethod
    def for_track(cls, spec: TrackSpec, tune_threshold: bool = False) -> PostProcess:
        return cls(spec.problem, tune_threshold=tune_threshold)

    @property
    def classifies(self) -> bool:
        return self.problem in (Problem.FRAME_CLASSIFICATION, Problem.CLIP_CLASSIFICATION)

    @property
    def smooths(self) -> bool:
        return self.problem.per_frame

    def score(self, spec: TrackSpec, truth: np.ndarray, outputs: np.ndarray) -> Score:
        """The track's score of these outputs with what is tuned after training (AU thresholds)
        tuned on the same rows: how single runs, members and combinations are all compared."""
        thresholds = tune_au_thresholds(truth, outputs) if self.problem == Problem.FRAME_MULTILABEL else None
        return self._score(spec, truth, outputs, thresholds)

    @staticmethod
    def _score(spec, truth, outputs, thresholds) -> Score:
        if thresholds is not None:
            from challenge.frame_metrics import au_score

            return au_score(truth, outputs, spec.labels, thresholds)
        return spec.score(truth, outputs)

    def fit(self, spec: TrackSpec, truth: np.ndarray, outputs: np.ndarray, lengths, sigmas=DEFAULT_SIGMAS) -> Score:
        """Choose sigma (ties go to the lighter smoothing) and, for AUs, thresholds on the smoothed
        outputs; returns the score at the fitted state."""
        if self.smooths:
            self.sigma, self.scores_by_sigma = tune_sigma(lambda v: self.score(spec, truth, v).value, outputs, lengths, sigmas)
        smoothed = self.smooth(outputs, lengths)
        if self.problem == Problem.FRAME_MULTILABEL:
            self.thresholds = tune_au_thresholds(truth, smoothed).tolist()
        if self.tune_threshold and self.classifies and smoothed.shape[1] == 2:
            self.score_at_half = spec.score(truth, smoothed).value
            self.threshold = tune_binary_threshold(lambda t: spec.score(truth, shift_threshold(smoothed, t)).value)
        return self._score(spec, truth, self.calibrate(smoothed), self.thresholds)

    def smooth(self, outputs: np.ndarray, lengths) -> np.ndarray:
        return smooth_videos(outputs, lengths, self.sigma) if self.smooths else outputs

    def calibrate(self, outputs: np.ndarray) -> np.ndarray:
        """Two-class probabilities moved so that the threshold falls on 0.5 (monotone, so the
        ranking and the average precision stay): every score, ensemble and file that decides by
        argmax then decides by the threshold. Identity at 0.5 and for other problems."""
        if not self.classifies or self.threshold == 0.5 or outputs.shape[1] != 2:
            return outputs
        return shift_threshold(outputs, self.threshold)

    def decide(self, outputs: np.ndarray) -> np.ndarray:
        if self.problem in (Problem.FRAME_CLASSIFICATION, Problem.CLIP_CLASSIFICATION):
            return outputs.argmax(1)
        if self.problem == Problem.FRAME_MULTILABEL:
            thresholds = np.full(outputs.shape[1], 0.5) if self.thresholds is None else np.asarray(self.thresholds)
            return (outputs >= thresholds).astype(int)
        return outputs

    def apply(self, outputs: np.ndarray, lengths) -> np.ndarray:
        """Smoothed, then decided: what the submission file holds."""
        return self.decide(self.calibrate(self.smooth(outputs, lengths)))

    def state(self) -> dict:
        return {
            "problem": self.problem.value,
            "sigma": self.sigma,
            "thresholds": self.thresholds,
            "scores_by_sigma": {f"{k:g}": v for k, v in self.scores_by_sigma.items()},
            "threshold": self.threshold,
            "score_at_half": self.score_at_half,
        }

    @classmethod
    def from_state(cls, state: dict) -> PostProcess:
        return cls(
            Problem(state["problem"]),
            float(state["sigma"]),
            state.get("thresholds"),
            {float(k): v for k, v in state.get("scores_by_sigma", {}).items()},
            float(state.get("threshold", 0.5)),  # saved before thresholds existed: 0.5
            score_at_half=state.get("score_at_half"),
        )


THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)


def tune_binary_threshold(score_at) -> float:
    """The threshold on class 1's probability with the best score; ties go to the one nearest 0.5."""
    scores = np.array([score_at(t) for t in THRESHOLDS])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(THRESHOLDS[best[np.argmin(np.abs(THRESHOLDS[best] - 0.5))]])


def shift_threshold(outputs: np.ndarray, threshold: float) -> np.ndarray:
    """[N, 2] probabilities with p1 mapped piecewise-linearly so `threshold` lands on 0.5 (and
    0 on 0, 1 on 1); class 1 wins the argmax exactly when p1 > threshold."""
    p = np.clip(outputs[:, 1] / np.maximum(outputs.sum(1), 1e-12), 0.0, 1.0)
    t = float(np.clip(threshold, 1e-6, 1 - 1e-6))
    moved = np.where(p <= t, 0.5 * p / t, 0.5 + 0.5 * (p - t) / (1 - t))
    return np.stack([1.0 - moved, moved], axis=1).astype(outputs.dtype, copy=False)
