"""Clip classifiers on pooled features (statistics of each modality over the clip): one MLP
per modality, then late fusion, an MLP over the modality models' last-layer latents (the
smiles-and-laughter recipe); with one modality it is that modality's MLP. Each MLP has a
linear path beside it that starts as the logistic regression fitted on the same training clips
(`linear`, on by default; `linear_C` its penalty), with the MLP's output at zero, and that start
competes with every epoch on the stop set. On a hundred clips an MLP alone reads
corpus-specific cues that a linear model ignores (it scored well below logistic regression
across corpora); starting from the linear model keeps that from costing anything."""

from __future__ import annotations

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution

from challenge.heads.base import Head
from challenge.stores.saved_state import load_module, module_arrays
from challenge.track import Problem
from challenge.training.normalise import Normaliser


class LateFusionHead(Head):
    name = "mlp-late-fusion"
    problems = {Problem.CLIP_CLASSIFICATION}
    defaults = {
        "hidden": 64,
        "latent": 32,
        "fusion_hidden": 32,
        "fusion_latent": 16,
        "dropout": 0.2,
        "learning_rate": 1e-3,
        "weight_decay": 1e-4,
        "epochs": 60,
        "patience": 10,
        "linear": True,
        "linear_C": 1.0,
    }
    search_space = {
        "hidden": CategoricalDistribution([32, 64, 128]),
        "latent": CategoricalDistribution([16, 32]),
        "dropout": FloatDistribution(0.0, 0.5),
        "learning_rate": FloatDistribution(1e-4, 3e-3, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
        "linear": CategoricalDistribution([True, False]),
        "linear_C": FloatDistribution(1e-2, 1e2, log=True),
    }

    def fit(self, train, valid, score, report=None) -> float:
        from challenge.training.clip_classifier import ClipClassifier, embed_clips, fit_clips

        p, classes = self.params, self.n_outputs
        self.modalities = list(train.blocks)
        self.models, best, self.history = {}, float("nan"), []
        for m in self.modalities:  # the last stage reports to the tuner, the others train quietly
            last = len(self.modalities) == 1
            self.models[m] = ClipClassifier(train.block(m).shape[1], classes, p["hidden"], p["latent"], p["dropout"], p["linear"])
            best, history = fit_clips(
                self.models[m],
                train.block(m),
                train.targets,
                valid.block(m),
                valid.targets,
                score,
                self.seed,
                p,
                report if last else None,
                self._start(train.block(m), train.targets),
            )
            self.history += history
        self.fusion = None
        if len(self.modalities) > 1:
            latents = {
                name: np.concatenate([embed_clips(self.models[m], d.block(m)) for m in self.modalities], 1)
                for name, d in (("train", train), ("valid", valid))
            }
            self.latent_normaliser = Normaliser.fit([latents["train"]])
            self.fusion = ClipClassifier(
                latents["train"].shape[1], classes, p["fusion_hidden"], p["fusion_latent"], p["dropout"], p["linear"]
            )
            fused = self.latent_normaliser(latents["train"])
            best, history = fit_clips(
                self.fusion,
                fused,
                train.targets,
                self.latent_normaliser(latents["valid"]),
                valid.targets,
                score,
                self.seed,
                p,
                report,
                self._start(fused, train.targets),
            )
            self.history += history
        for step, row in enumerate(self.history):
            row["epoch"] = step  # one step axis over the stages, as MLflow logs it
        return best

    def _start(self, x: np.ndarray, y: np.ndarray):
        """The linear path's starting weights: logistic regression on these clips (None without
        a linear path, or with one class, where there is nothing to fit)."""
        from challenge.heads.linear import logistic_weights

        if not self.params["linear"] or len(np.unique(y)) < 2:
            return None
        return logistic_weights(x, y, self.n_outputs, self.params["linear_C"])

    def embed(self, data) -> np.ndarray:
        """The fused latents (what the t-SNE plot shows), or the single modality's."""
        from challenge.training.clip_classifier import embed_clips

        latents = np.concatenate([embed_clips(self.models[m], data.block(m)) for m in self.modalities], 1)
        return self.latent_normaliser(latents) if self.fusion is not None else latents

    def predict_each(self, data) -> dict[str, np.ndarray]:
        """Class probabilities of every modality model, and of the fusion ("audiovisual")."""
        from challenge.training.clip_classifier import predict_clips

        outputs = {m: predict_clips(self.models[m], data.block(m)) for m in self.modalities}
        if self.fusion is not None:
            outputs["audiovisual"] = predict_clips(self.fusion, self.embed(data))
        return outputs

    def predict(self, data) -> np.ndarray:
        return list(self.predict_each(data).values())[-1]

    def state(self):
        arrays = {}
        for i, m in enumerate(self.modalities):
            arrays |= module_arrays(self.models[m], f"models.{i}.")
        info = {"modalities": self.modalities, "dims": [self.models[m].encode[0].in_features for m in self.modalities], "fusion": None}
        if self.fusion is not None:
            arrays |= module_arrays(self.fusion, "fusion.")
            info["fusion"] = {"dim": self.fusion.encode[0].in_features, "normaliser": self.latent_normaliser.state()}
        return info, arrays

    def restore(self, info, arrays) -> None:
        from challenge.training.clip_classifier import ClipClassifier

        p = self.params
        self.modalities = info["modalities"]
        self.models = {
            m: load_module(ClipClassifier(dim, self.n_outputs, p["hidden"], p["latent"], p["dropout"], p["linear"]), arrays, f"models.{i}.")
            for i, (m, dim) in enumerate(zip(self.modalities, info["dims"]))
        }
        self.fusion = None
        if info["fusion"] is not None:
            fusion = ClipClassifier(
                info["fusion"]["dim"], self.n_outputs, p["fusion_hidden"], p["fusion_latent"], p["dropout"], p["linear"]
            )
            self.fusion = load_module(fusion, arrays, "fusion.")
            self.latent_normaliser = Normaliser.from_state(info["fusion"]["normaliser"])
