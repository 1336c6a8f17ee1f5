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
from challenge.heads.base import Head, register_head
from challenge.heads.frame_common import FRAME_PROBLEMS
from challenge.saved_state import load_module, module_arrays
from challenge.track import Problem

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

    def save_backbone(self, folder: Path) -> Path:
        """The fine-tuned backbone as a `save_pretrained` folder: given back as --audio-model or
        --visual-model, it is extracted into the feature store under its own content digest."""
        return self.model.backbone.save_pretrained(folder)


@register_head
class Wav2Vec2LSTMHead(EndToEndHead):
    name = "wav2vec2-lstm"
    medium, extractor, backbone_kind = "audio", "wav2vec2", "wav2vec2"
    problems = {Problem.CLIP_REGRESSION}
    defaults = FinetuneSettings().model_dump() | {
        "hidden": 128, "layers": 1, "dropout": 0.1, "mlp_hidden": 128, "window_seconds": 4.0, "augment_gain_db": 6.0, "loss": "mse",
        "linear_path": True, "backbone": {},
    }
    search_space = FINETUNE_SPACE | {"hidden": CategoricalDistribution([64, 128, 256]), "dropout": FloatDistribution(0.0, 0.4),
                                     "linear_path": CategoricalDistribution([True, False])}

    def assemble(self, backbone):
        from challenge.finetune.models import ClipRegressor
        from challenge.heads.lstm import GlobalContextLSTM

        p = self.params
        return ClipRegressor(backbone, GlobalContextLSTM(backbone.width, p["hidden"], p["layers"], p["dropout"], p["mlp_hidden"], self.n_outputs,
                                                         p["linear_path"]))

    def train_model(self, train, valid, score, report):
        """With `linear_path`, the head's linear map starts as ridge on the pretrained backbone's
        pooled steps (the MLP's last layer at zero): training starts where the frozen linear
        baseline ends, and that start competes with the epochs."""
        import numpy as np

        from challenge.finetune.loops import clip_contexts, fit_clips
        from challenge.heads.linear import fit_ridge

        if self.params["linear_path"]:
            weights, biases, _ = fit_ridge(clip_contexts(self.model.to(self.device), train, self.params, self.device), train.targets)
            self.model.head.start_from(weights.astype(np.float32), biases.astype(np.float32))
        return fit_clips(self.model, train, valid, self.params, score, report, self.seed, self.device, self.checkpoint,
                         keep_start=self.params["linear_path"])

    def predict(self, data):
        from challenge.finetune.loops import predict_clips

        return predict_clips(self.model, data, self.params, self.device)


@register_head
class ViTFramesHead(EndToEndHead):
    name = "vit-frames"
    medium, extractor, backbone_kind = "faces", "mae", "vit-mae"
    problems = FRAME_PROBLEMS
    defaults = FinetuneSettings().model_dump() | {
        "dropout": 0.1, "frames_per_video": 64, "augment_flip": 0.5, "class_weighted": True, "backbone": {}, "freeze_feature_encoder": False,
    }
    search_space = FINETUNE_SPACE | {"dropout": FloatDistribution(0.0, 0.4)}

    def assemble(self, backbone):
        from challenge.finetune.models import FrameClassifier

        return FrameClassifier(backbone, self.params["dropout"], self.n_outputs)

    def sized(self, data):
        """The track's face loader, at the size this backbone reads."""
        data.size = self.model.backbone.size
        return data

    def train_model(self, train, valid, score, report):
        from challenge.finetune.loops import fit_frames

        return fit_frames(self.model, self.problem, self.sized(train), self.sized(valid), self.params, score, report, self.seed, self.device,
                          self.n_outputs, self.checkpoint)

    def predict(self, data):
        from challenge.finetune.loops import predict_frames

        return predict_frames(self.model, self.problem, self.sized(data), self.device)


@register_head
class SocialMAEClipsHead(EndToEndHead):
    """Social-MAE fine-tuned on clips (EMI): its encoder and a linear layer on the pooled joint,
    audio and video embeddings, trained together on random windows (the paper's recipe: the
    decoder replaced by a linear layer, no masking). The layer starts as ridge on the pretrained
    encoder's embeddings, so training starts where the frozen linear baseline ends."""

    name = "social-mae-clips"
    medium, extractor, backbone_kind = "audio-visual", "social-mae", "social-mae"
    problems = {Problem.CLIP_REGRESSION}
    defaults = FinetuneSettings().model_dump() | {"dropout": 0.1, "loss": "mse", "linear_start": True, "backbone": {},
                                                  "freeze_feature_encoder": False, "backbone_lr": 1e-4, "head_lr": 1e-3}
    search_space = FINETUNE_SPACE | {"dropout": FloatDistribution(0.0, 0.4)}

    def assemble(self, backbone):
        from challenge.finetune.models import ClipEmbeddingRegressor

        return ClipEmbeddingRegressor(backbone, self.params["dropout"], self.n_outputs)

    def sized(self, data):
        """The track's audio-visual loader, cut as this backbone reads (bins, side, frames, length)."""
        data.model = self.model.backbone.network.config
        return data

    def train_model(self, train, valid, score, report):
        import numpy as np
        import torch

        from challenge.finetune.loops import av_embeddings, fit_av_clips
        from challenge.heads.linear import fit_ridge

        train, valid = self.sized(train), self.sized(valid)
        if self.params["linear_start"]:
            weights, biases, _ = fit_ridge(av_embeddings(self.model.to(self.device), train, self.device), train.targets)
            with torch.no_grad():
                self.model.out[1].weight.copy_(torch.from_numpy(np.asarray(weights, np.float32)))  # [outputs, width], as nn.Linear holds it
                self.model.out[1].bias.copy_(torch.from_numpy(np.asarray(biases, np.float32)))
        return fit_av_clips(self.model, train, valid, self.params, score, report, self.seed, self.device, self.checkpoint,
                            keep_start=self.params["linear_start"])

    def predict(self, data):
        from challenge.finetune.loops import predict_av_clips

        return predict_av_clips(self.model, self.sized(data), self.device)
