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

    @classmethod
    def for_track(cls, spec: TrackSpec) -> PostProcess:
        return cls(spec.problem)

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
        return self._score(spec, truth, smoothed, self.thresholds)

    def smooth(self, outputs: np.ndarray, lengths) -> np.ndarray:
        return smooth_videos(outputs, lengths, self.sigma) if self.smooths else outputs

    def decide(self, outputs: np.ndarray) -> np.ndarray:
        if self.problem in (Problem.FRAME_CLASSIFICATION, Problem.CLIP_CLASSIFICATION):
            return outputs.argmax(1)
        if self.problem == Problem.FRAME_MULTILABEL:
            thresholds = np.full(outputs.shape[1], 0.5) if self.thresholds is None else np.asarray(self.thresholds)
            return (outputs >= thresholds).astype(int)
        return outputs

    def apply(self, outputs: np.ndarray, lengths) -> np.ndarray:
        """Smoothed, then decided: what the submission file holds."""
        return self.decide(self.smooth(outputs, lengths))

    def state(self) -> dict:
        return {
            "problem": self.problem.value,
            "sigma": self.sigma,
            "thresholds": self.thresholds,
            "scores_by_sigma": {f"{k:g}": v for k, v in self.scores_by_sigma.items()},
        }

    @classmethod
    def from_state(cls, state: dict) -> PostProcess:
        return cls(
            Problem(state["problem"]),
            float(state["sigma"]),
            state.get("thresholds"),
            {float(k): v for k, v in state.get("scores_by_sigma", {}).items()},
        )
