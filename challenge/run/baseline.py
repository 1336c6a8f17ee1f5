"""The linear baseline beside every run's score: ridge (values) or logistic regression (classes,
AUs) on the run's own features, split and post-processing. A head that does not beat it is
told so, in the console and in MLflow (`baseline.score`, `gain_over_baseline`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from challenge.postprocess import PostProcess
from challenge.track import TrackSpec


@dataclass
class Baseline:
    head: str
    score: float
    gain: float  # the run's score minus the baseline's (the sign follows the track's direction)
    compared: str = "same split and features"  # how it was fitted beside the head (--protocol)

    @property
    def beaten(self) -> bool:
        return self.gain > 0

    def describe(self) -> str:
        verdict = "" if self.beaten else " -- the head does NOT beat the linear baseline"
        return f"linear baseline ({self.head}, {self.compared}): {self.score:.4f}; gain over it {self.gain:+.4f}{verdict}"


def fit_baseline(spec: TrackSpec, train, valid, seed: int, tune_threshold: bool = False):
    """The problem's linear model fitted on `train`, its post-processing fitted on `valid`
    exactly as a head's is (frame tracks: smoothing and AU thresholds). Returns (head, post,
    validation score)."""
    from challenge.heads import get_head
    from challenge.heads.linear import baseline_head_name

    head = get_head(baseline_head_name(spec.problem))({}, spec.problem, len(spec.labels), seed=seed)
    head.fit_training(train)
    post = PostProcess.for_track(spec, tune_threshold)
    return head, post, score_outputs(spec, valid, head.predict(valid), tune_threshold, post)


def score_outputs(spec: TrackSpec, valid, outputs, tune_threshold: bool = False, post: PostProcess | None = None) -> float:
    """A model's validation score from its outputs on `valid`, its post-processing fitted there
    as a run's is (frame tracks: smoothing and AU thresholds; two classes: the decision rule)."""
    post = post or PostProcess.for_track(spec, tune_threshold)
    if spec.problem.per_frame:
        value = post.fit(spec, valid.targets(), np.concatenate(outputs), valid.lengths).value
    elif post.classifies:  # the same decision threshold rule as the head's (tuned with --tune-threshold)
        value = post.fit(spec, valid.targets, outputs, [1] * len(valid)).value
    else:
        value = spec.score(valid.targets, outputs).value
    return float(value)


def record_baseline(baseline_head: str, head_score: float, baseline_score: float, direction: str = "maximize") -> Baseline:
    """The comparison, logged in the active MLflow run."""
    import mlflow

    gain = (head_score - baseline_score) * (1 if direction == "maximize" else -1)
    result = Baseline(baseline_head, float(baseline_score), float(gain))
    mlflow.log_metrics({"baseline.score": result.score, "gain_over_baseline": result.gain})
    mlflow.set_tag("baseline.head", baseline_head)
    return result


def linear_baseline(
    spec: TrackSpec, head_name: str, head_score: float, train, valid, seed: int, tune_threshold: bool = False
) -> Baseline | None:
    """The baseline scored on `valid` beside the head's validation score; None when the head
    is the baseline itself or there is no labelled validation."""
    from challenge.heads.linear import baseline_head_name

    name = baseline_head_name(spec.problem)
    if head_name == name or valid is None or not np.isfinite(head_score):
        return None
    _, _, value = fit_baseline(spec, train, valid, seed, tune_threshold)
    return record_baseline(name, head_score, value, spec.direction)
