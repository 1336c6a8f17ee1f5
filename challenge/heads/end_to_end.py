"""End-to-end heads: a pretrained backbone fine-tuned with its head (challenge.finetune). They
read media through the loader the track supplies (`reads = "media"`), take their backbone from
the extractor settings of their medium (`--audio-model` / `--visual-model`, so the same
checkpoints load), and are tuned, saved, ensembled and used by `challenge predict` as every
other head. `challenge track TRACK --finetune` picks the track's end-to-end head.

Their settings are the `finetune:` section of the run config (FinetuneSettings), plus each
head's own; Optuna tunes the search space, a value set in the config is fixed."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from optuna.distributions import CategoricalDistribution, FloatDistribution

from challenge.finetune.settings import FinetuneSettings
from challenge.heads.base import Head
from challenge.heads.frame_common import FRAME_PROBLEMS
from challenge.stores.saved_state import load_module, module_arrays
from challenge.track import Problem

# the smile-laugh reports' modality names (audio+visual reads as "audiovisual")
MODALITY_OF_MEDIUM = {"audio": "audio", "audio-visual": "audio+visual", "faces": "visual"}

FINETUNE_SPACE = {
    "backbone_lr": FloatDistribution(1e-5, 3e-4, log=True),
    "head_lr": FloatDistribution(1e-4, 3e-3, log=True),
    "layer_decay": FloatDistribution(0.5, 1.0),
    "warmup": FloatDistribution(0.0, 0.2),
}


class EndToEndHead(Head):
    reads = "media"
    medium: ClassVar[str]  # what the track's loader must give: "audio" or "faces"
    extractor: ClassVar[str]  # the extractor whose settings name the backbone (and give the frozen baseline's features)
    backbone_kind: ClassVar[str]
    model_flag: ClassVar[str]  # the option that takes the saved backbone back (--audio-model, ...)
    checkpoint: Path | None = None  # set by the run: where each epoch's training state is kept (resumable)

    def backbone_settings(self) -> dict:
        return self.params["backbone"]

    def fit(self, train, valid, score, report=None) -> float:
        import torch

        from challenge.finetune.backbones import load_backbone

        torch.manual_seed(self.seed)
        settings = self.backbone_settings()
        backbone = load_backbone(self.backbone_kind, settings, settings.get("layer"))
        self.shape = {"backbone": backbone.config_dict()}
        self.model = self.assemble(backbone)
        best, self.history = self.train_model(train, valid, score, report)
        return best

    def state(self):
        return {"shape": self.shape}, module_arrays(self.model)

    def restore(self, info: dict, arrays) -> None:
        from challenge.finetune.backbones import rebuild_backbone

        self.shape = info["shape"]
        self.model = load_module(self.assemble(rebuild_backbone(self.shape["backbone"])), arrays)

    @property
    def classes(self) -> int | None:
        """The number of classes of a clip classification (smile-laugh), else None."""
        return self.n_outputs if self.problem == Problem.CLIP_CLASSIFICATION else None

    def linear_start(self, x, targets):
        """(weights [outputs, D], biases [outputs]) of the linear model fitted on the pretrained
        backbone's embeddings `x` that the head's linear layer starts as: ridge for values, the
        baselines' logistic regression (balanced classes) for classes, fitted on standardised
        columns with the scaling folded into the weights."""
        import numpy as np

        from challenge.heads.linear import fit_ridge, logistic_weights

        if not self.classes:
            weights, biases, _ = fit_ridge(x, targets)
            return weights.astype(np.float32), biases.astype(np.float32)
        mean, std = x.mean(0), x.std(0) + 1e-6
        weights, biases = logistic_weights((x - mean) / std, np.asarray(targets, int), self.classes, 1.0)
        return (weights / std).astype(np.float32), (biases - (weights / std) @ mean).astype(np.float32)

    def predict_each(self, data) -> dict:
        """The smiles reports' outputs by modality: one, named by what the backbone reads."""
        return {MODALITY_OF_MEDIUM[self.medium]: self.predict(data)}

    def save_backbone(self, folder: Path) -> Path:
        """The fine-tuned backbone as a `save_pretrained` folder: given back as --audio-model or
        --visual-model, it is extracted into the feature store under its own content digest."""
        return self.model.backbone.save_pretrained(folder)


class Wav2Vec2LSTMHead(EndToEndHead):
    name = "wav2vec2-lstm"
    medium, extractor, backbone_kind, model_flag = "audio", "wav2vec2", "wav2vec2", "--audio-model"
    problems = {Problem.CLIP_REGRESSION, Problem.CLIP_CLASSIFICATION}
    defaults = FinetuneSettings().model_dump() | {
        "hidden": 128,
        "layers": 1,
        "dropout": 0.1,
        "mlp_hidden": 128,
        "window_seconds": 4.0,
        "augment_gain_db": 6.0,
        "loss": "mse",
        "linear_path": True,
        "backbone": {},
    }
    search_space = FINETUNE_SPACE | {
        "hidden": CategoricalDistribution([64, 128, 256]),
        "dropout": FloatDistribution(0.0, 0.4),
        "linear_path": CategoricalDistribution([True, False]),
    }

    def assemble(self, backbone):
        from challenge.finetune.modules import ClipRegressor
        from challenge.heads.lstm import GlobalContextLSTM

        p = self.params
        return ClipRegressor(
            backbone,
            GlobalContextLSTM(backbone.width, p["hidden"], p["layers"], p["dropout"], p["mlp_hidden"], self.n_outputs, p["linear_path"]),
        )

    def train_model(self, train, valid, score, report):
        """With `linear_path`, the head's linear map starts as the linear model (ridge, or
        logistic for classes) on the pretrained backbone's pooled steps (the MLP's last layer at
        zero): training starts where the frozen linear baseline ends, and that start competes
        with the epochs."""
        from challenge.finetune.loops import clip_contexts, fit_clips

        if self.params["linear_path"]:
            self.model.head.start_from(
                *self.linear_start(clip_contexts(self.model.to(self.device), train, self.params, self.device), train.targets)
            )
        return fit_clips(
            self.model,
            train,
            valid,
            self.params,
            score,
            report,
            self.seed,
            self.device,
            self.checkpoint,
            keep_start=self.params["linear_path"],
            classes=self.classes,
        )

    def predict(self, data):
        from challenge.finetune.loops import predict_clips, softmax

        outputs = predict_clips(self.model, data, self.params, self.device)
        return softmax(outputs) if self.classes else outputs


class ViTFramesHead(EndToEndHead):
    name = "vit-frames"
    medium, extractor, backbone_kind, model_flag = "faces", "mae", "vit-mae", "--visual-model"
    problems = FRAME_PROBLEMS
    defaults = FinetuneSettings().model_dump() | {
        "dropout": 0.1,
        "frames_per_video": 64,
        "augment_flip": 0.5,
        "class_weighted": True,
        "backbone": {},
        "freeze_feature_encoder": False,
    }
    search_space = FINETUNE_SPACE | {"dropout": FloatDistribution(0.0, 0.4)}

    def assemble(self, backbone):
        from challenge.finetune.modules import FrameClassifier

        return FrameClassifier(backbone, self.params["dropout"], self.n_outputs)

    def sized(self, data):
        """The track's face loader, at the size this backbone reads."""
        data.size = self.model.backbone.size
        return data

    def train_model(self, train, valid, score, report):
        from challenge.finetune.loops import fit_frames

        return fit_frames(
            self.model,
            self.problem,
            self.sized(train),
            self.sized(valid),
            self.params,
            score,
            report,
            self.seed,
            self.device,
            self.n_outputs,
            self.checkpoint,
        )

    def predict(self, data):
        from challenge.finetune.loops import predict_frames

        return predict_frames(self.model, self.problem, self.sized(data), self.device)


class SocialMAEClipsHead(EndToEndHead):
    """Social-MAE fine-tuned on clips (EMI's intensities, smile-laugh's classes): its encoder and a linear layer on the pooled joint,
    audio and video embeddings, trained together on random windows (the paper's recipe: the
    decoder replaced by a linear layer, no masking). The layer starts as ridge on the pretrained
    encoder's embeddings, so training starts where the frozen linear baseline ends."""

    name = "social-mae-clips"
    medium, extractor, backbone_kind, model_flag = "audio-visual", "social-mae", "social-mae", "--social-mae-model"
    problems = {Problem.CLIP_REGRESSION, Problem.CLIP_CLASSIFICATION}
    defaults = FinetuneSettings().model_dump() | {
        "dropout": 0.1,
        "loss": "mse",
        "linear_start": True,
        "backbone": {},
        "freeze_feature_encoder": False,
        "backbone_lr": 1e-4,
        "head_lr": 1e-3,
    }
    search_space = FINETUNE_SPACE | {"dropout": FloatDistribution(0.0, 0.4)}

    def assemble(self, backbone):
        from challenge.finetune.modules import ClipEmbeddingRegressor

        return ClipEmbeddingRegressor(backbone, self.params["dropout"], self.n_outputs)

    def sized(self, data):
        """The track's audio-visual loader, cut as this backbone reads (bins, side, frames, length)."""
        data.model = self.model.backbone.network.config
        return data

    def train_model(self, train, valid, score, report):
        import torch

        from challenge.finetune.loops import av_embeddings, fit_av_clips

        train, valid = self.sized(train), self.sized(valid)
        if self.params["linear_start"]:
            weights, biases = self.linear_start(av_embeddings(self.model.to(self.device), train, self.device), train.targets)
            with torch.no_grad():
                self.model.out[1].weight.copy_(torch.from_numpy(weights))  # [outputs, width], as nn.Linear holds it
                self.model.out[1].bias.copy_(torch.from_numpy(biases))
        return fit_av_clips(
            self.model,
            train,
            valid,
            self.params,
            score,
            report,
            self.seed,
            self.device,
            self.checkpoint,
            keep_start=self.params["linear_start"],
            classes=self.classes,
        )

    def predict(self, data):
        from challenge.finetune.loops import predict_av_clips, softmax

        outputs = predict_av_clips(self.model, self.sized(data), self.device)
        return softmax(outputs) if self.classes else outputs
