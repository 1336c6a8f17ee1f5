"""Grouped K-fold training of a per-frame head: each fold's model trains on the other folds'
videos and stops early on its own, so selection never rests on one recording. The K models
together are the run's model (their per-frame probabilities averaged); their held-out outputs
give every training video a prediction by a model that did not see it (the cross-validated
score, and what the post-processing is fitted on)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from challenge.stores.saved_state import describe, rebuild, saved_kind
from challenge.training.frame_data import FrameFeatures


@saved_kind("frame-folds")
@dataclass
class FrameFoldEnsemble:
    members: list  # fitted heads, one per fold
    out_of_fold: list[np.ndarray]  # per training video: [n_frames, C] from the model that held it out
    history: list[dict] = field(default_factory=list)  # one row per fold: its held-out score

    @property
    def name(self) -> str:
        return self.members[0].name

    @property
    def params(self) -> dict:
        return self.members[0].params

    def predict(self, data: FrameFeatures) -> list[np.ndarray]:
        each = [member.predict(data) for member in self.members]
        return [np.mean([outputs[i] for outputs in each], 0).astype(np.float32) for i in range(len(data))]

    def save_state(self, arrays: dict, prefix: str) -> dict:
        """The fold models (the out-of-fold outputs served the run and are not kept)."""
        return {"members": [describe(m, arrays, f"{prefix}members.{i}.") for i, m in enumerate(self.members)], "history": self.history}

    @classmethod
    def load_state(cls, info: dict, arrays: dict, prefix: str) -> FrameFoldEnsemble:
        return cls([rebuild(m, arrays, f"{prefix}members.{i}.") for i, m in enumerate(info["members"])], [], info["history"])


def cross_validate_frames(
    head_cls,
    params: dict,
    problem,
    n_outputs: int,
    dev: FrameFeatures,
    truth: list[np.ndarray],
    folds: np.ndarray,
    seed: int,
    score,
    device: str = "cpu",
    report=None,
) -> tuple[float, FrameFoldEnsemble]:
    """(score of the pooled out-of-fold outputs against `truth`, the fold models). `dev.labels`
    are what the models learn from (shuffled in a control run); `truth` is what they are scored
    on. `folds[i]` is video i's fold (challenge.training.grouped_folds.fold_loop)."""
    from challenge.training.grouped_folds import fold_loop

    out_of_fold: list[np.ndarray | None] = [None] * len(dev)

    def fit_fold(fold: int, held: np.ndarray):
        held, rest = np.flatnonzero(held), np.flatnonzero(~held)
        stop = dev.subset(held)
        stop.labels = [truth[i] for i in held]
        head = head_cls(params, problem, n_outputs, seed=seed + fold, device=device)
        fold_score = head.fit(dev.subset(rest), stop, score)
        for i, outputs in zip(held, head.predict(stop)):
            out_of_fold[i] = outputs
        return fold_score, head

    def running_score() -> float:
        done = [i for i in range(len(dev)) if out_of_fold[i] is not None]
        return score(np.concatenate([truth[i] for i in done]), np.concatenate([out_of_fold[i] for i in done]))

    members, history = fold_loop(folds, fit_fold, report, running_score)
    value = score(np.concatenate(truth), np.concatenate(out_of_fold))
    return value, FrameFoldEnsemble(members, out_of_fold, history)
