"""Grouped K-fold training of a clip head: each fold's model trains on the other folds and stops
early on its own fold, so selection never rests on one recording. The K models together are the
run's model (their probabilities averaged), and their held-out predictions give the
cross-validated score of every clip of the training corpus."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from challenge.stores.saved_state import describe, rebuild, saved_kind
from challenge.track import Problem
from challenge.training.normalise import Normaliser
from tracks.smiles.clip_windows import PooledClips


@dataclass
class FoldModel:
    head: object
    normaliser: Normaliser

    def predict_each(self, data: PooledClips) -> dict[str, np.ndarray]:
        return self.head.predict_each(data.take(slice(None), data.own_normaliser or self.normaliser))


@saved_kind("clip-folds")
@dataclass
class FoldEnsemble:
    """The fold models of one seed. Predictions average the folds' probabilities; `out_of_fold`
    holds each training clip's prediction by the model that did not train on it."""

    models: list[FoldModel]
    out_of_fold: dict[str, np.ndarray]  # modality -> [clips, classes]
    history: list[dict] = field(default_factory=list)  # one row per fold: its validation score

    def predict_each(self, data: PooledClips) -> dict[str, np.ndarray]:
        each = [m.predict_each(data) for m in self.models]
        return {name: np.mean([outputs[name] for outputs in each], 0) for name in each[0]}

    def predict(self, data: PooledClips) -> np.ndarray:
        return list(self.predict_each(data).values())[-1]

    def embed(self, data: PooledClips) -> np.ndarray | None:
        """The first fold model's latents (each fold learns its own latent space, so they are
        not averaged)."""
        first = self.models[0]
        return first.head.embed(data.take(slice(None), first.normaliser)) if hasattr(first.head, "embed") else None

    def save_state(self, arrays: dict, prefix: str) -> dict:
        """The fold models and their normalisers (the out-of-fold outputs served the run and are not kept)."""
        return {
            "models": [
                {
                    "head": describe(m.head, arrays, f"{prefix}models.{i}."),
                    "normaliser": m.normaliser.state() if m.normaliser is not None else None,
                }
                for i, m in enumerate(self.models)
            ],
            "history": self.history,
        }

    @classmethod
    def load_state(cls, info: dict, arrays: dict, prefix: str) -> FoldEnsemble:
        models = [
            FoldModel(
                rebuild(m["head"], arrays, f"{prefix}models.{i}."),
                Normaliser.from_state(m["normaliser"]) if m["normaliser"] is not None else None,
            )
            for i, m in enumerate(info["models"])
        ]
        return cls(models, {}, info["history"])


def cross_validate(
    head_cls,
    params: dict,
    dev: PooledClips,
    folds: np.ndarray,
    seed: int,
    score,
    n_classes: int,
    device: str = "cpu",
    fit_targets: np.ndarray | None = None,
    report=None,
    checkpoint=None,
) -> tuple[float, FoldEnsemble]:
    """(score of the pooled out-of-fold predictions, the fold models). `fit_targets` replaces
    the labels the models learn from (a shuffled-label control) while scores use the truth.
    Each fold's features are standardised with its own training rows' statistics
    (challenge.training.grouped_folds.fold_loop); `dev` may be media clips for an end-to-end
    head (challenge.finetune.loaders), whose `checkpoint(params, seed, train)` names where each
    fold's epochs are kept."""
    from challenge.training.grouped_folds import fold_loop

    targets = dev.targets if fit_targets is None else fit_targets
    out_of_fold: dict[str, np.ndarray] = {}
    done = np.zeros(len(dev), bool)

    def fit_fold(fold: int, held: np.ndarray):
        train = dev.take(~held)
        train.targets = targets[~held]
        normaliser = train.fit_normalisation()
        train.normalise_with(normaliser)
        stop = dev.take(held, normaliser)
        head = head_cls(params, Problem.CLIP_CLASSIFICATION, n_classes, seed=seed + fold, device=device)
        if checkpoint is not None:
            head.checkpoint = checkpoint(params, seed + fold, train)
        fold_score = head.fit(train, stop, score)
        for name, probabilities in head.predict_each(stop).items():
            out_of_fold.setdefault(name, np.zeros((len(dev), n_classes), np.float32))[held] = probabilities
        done[held] = True
        return fold_score, FoldModel(head, normaliser)

    models, history = fold_loop(folds, fit_fold, report, lambda: score(dev.targets[done], list(out_of_fold.values())[-1][done]))
    final = list(out_of_fold.values())[-1]
    return score(dev.targets, final), FoldEnsemble(models, out_of_fold, history)
